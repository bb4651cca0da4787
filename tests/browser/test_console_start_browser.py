"""Start a job from its kind's form, and clone a finished job with an edited payload, in a real browser with a
real worker running what was started."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent, Job, Status
from tests.browser.test_admin_browser import browser_page, shoot, worker  # noqa: F401 (fixtures)
from tests.browser.test_console_browser import log_in
from tests.jobs.helpers import status_of
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_starts_a_job_from_its_form_and_watches_it_run(browser_page, live_server, worker, acme, olga):
    page = browser_page
    log_in(page, live_server, "olga", "/admin/jobs/job/")
    page.click("text=Start a job")
    page.select_option("#id_kind", "diagnostics.ping")  # the page reloads with the kind's fields
    expect(page.locator("#id_payload-steps")).to_have_value("1")
    expect(page.locator("#id_tenant")).to_have_value(str(acme.pk))
    page.fill("#id_payload-steps", "2")
    page.fill("#id_payload-seconds", "1")
    page.fill("#id_reason", "checking the new worker host")
    shoot(page, "job-start-form")
    page.click("#start-form input[type=submit]")

    job = Job.objects.get()
    expect(page.locator("ul.messagelist")).to_contain_text(f"Start a job: Started job {job.short_id}.")
    expect(page.locator(f'.job-status[data-live-job="{job.pk}"]')).to_have_text("Succeeded", timeout=30_000)
    assert job.payload["steps"] == 2
    assert AuditEvent.objects.get(action=AuditAction.START).reason == "checking the new worker host"
    shoot(page, "job-started-from-form")


def test_an_operator_clones_a_failed_job_with_an_edited_payload(browser_page, live_server, worker, acme, olga):
    failed = enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 5})
    wait_for(lambda: status_of(failed) == Status.FAILED, timeout=60, what="the job to fail for good")
    page = browser_page
    log_in(page, live_server, "olga", f"/admin/jobs/job/{failed.pk}/change/")
    page.click('a[data-job-action="clone"]')
    expect(page.locator("#id_payload-fail_times")).to_have_value("5")
    page.fill("#id_payload-fail_times", "0")
    shoot(page, "job-clone-form")
    page.click("#start-form input[type=submit]")

    copy = Job.objects.exclude(pk=failed.pk).get()
    expect(page.locator("ul.messagelist")).to_contain_text(f"a copy of job {failed.short_id}")
    expect(page.locator(f'.job-status[data-live-job="{copy.pk}"]')).to_have_text("Succeeded", timeout=30_000)
    assert copy.payload["fail_times"] == 0
    expect(page.locator("#timeline")).to_contain_text("clone a job by olga")
    shoot(page, "job-cloned")
