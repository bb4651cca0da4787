"""A job's page stays whole while the job changes: from running to succeeded, without a reload, the
attempts table, times, result, timeline and buttons all follow."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs import enqueue
from tests.browser.test_admin_browser import browser_page, shoot, worker  # noqa: F401 (fixtures)
from tests.jobs.helpers import status_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_job_page_follows_the_job_from_running_to_succeeded_without_a_reload(browser_page, live_server, worker,
                                                                                 acme, olga):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 4, "steps": 4})
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/{job.pk}/change/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "olga-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/admin/jobs/job/{job.pk}/change/")
    page.evaluate("window.__stayedPut = true")

    # Running: the attempt appears as running, and Stop is offered.
    expect(page.locator("#attempts tr.attempt")).to_have_count(1, timeout=30_000)
    expect(page.locator("#attempts tr.attempt td").nth(4)).to_have_text("running")
    expect(page.locator('button[data-job-action="stop"]')).to_be_visible()

    # Succeeded: the attempt ends with its outcome, the times fill in, and Stop is gone.
    expect(page.locator("#attempts tr.attempt td").nth(6)).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator('button[data-job-action="stop"]')).to_have_count(0)
    expect(page.locator(".field-finished_at .readonly")).not_to_have_text("-")
    expect(page.locator("#timeline")).to_contain_text("succeeded")
    assert page.evaluate("window.__stayedPut") is True  # the page was never reloaded
    assert status_of(job) == "succeeded"
    shoot(page, "job-page-live-succeeded")
