"""The admin's home dashboard and the workers page in a real browser, with a real worker."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent, Status
from tests.browser.test_admin_browser import browser_page, shoot, worker  # noqa: F401 (fixtures)
from tests.jobs.helpers import status_of
from tests.jobs.test_console_dashboard import finished
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page, live_server, username: str, next_url: str = "/admin/") -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw-1")
    page.click("input[type=submit]")


def test_the_home_page_dashboard_charts_what_finished_and_switches_ranges(browser_page, live_server, acme, globex,
                                                                         alice, root):
    now = timezone.now()
    for hours in range(0, 20, 2):
        for n in range(hours % 5 + 1):
            finished(acme, "email.send", at=now - timedelta(hours=hours, minutes=n + 1), wait=0.04, run=0.2)
    finished(acme, "reports.generate", at=now - timedelta(hours=3), wait=2, run=45, status=Status.FAILED)
    finished(globex, "webhooks.deliver", at=now - timedelta(days=4), wait=0.3, run=1.5)
    enqueue("diagnostics.ping", tenant=acme, payload={})  # queued: no worker here

    page = browser_page
    log_in(page, live_server, "root")
    dashboard = page.locator("#jobs-dashboard")
    expect(dashboard.locator("#dashboard-who")).to_contain_text("superuser")
    expect(dashboard.locator('#dashboard-now li[data-status="queued"] .n')).to_have_text("1")
    expect(dashboard.locator("#dashboard-totals")).to_contain_text("1failed")
    assert dashboard.locator("#dashboard-chart svg rect").count() == 48  # 24 hours, two stacked bars each
    assert "succeeded" in dashboard.locator("#dashboard-chart svg rect title").first.text_content()
    expect(dashboard.locator('tr[data-kind="reports.generate"]')).to_contain_text("≤ 1 min")
    shoot(page, "admin-home-dashboard")

    dashboard.locator("#dashboard-ranges a", has_text="7 days").click()
    expect(dashboard.locator("h3").nth(1)).to_contain_text("Finished in the last 7 days")
    expect(dashboard.locator('tr[data-kind="webhooks.deliver"]')).to_be_visible()
    assert dashboard.locator("#dashboard-chart svg rect").count() == 14
    dashboard.locator('#dashboard-now li[data-status="queued"] a').click()
    page.wait_for_url("**/admin/jobs/job/?status__exact=queued")

    page.context.clear_cookies()
    log_in(page, live_server, "alice")
    expect(page.locator("#dashboard-who")).to_contain_text("admin of Acme Corp")
    expect(page.locator('tr[data-kind="email.send"]')).to_be_visible()
    page.locator("#dashboard-ranges a", has_text="7 days").click()
    expect(page.locator('tr[data-kind="reports.generate"]')).to_be_visible()
    assert page.locator('tr[data-kind="webhooks.deliver"]').count() == 0  # globex's
    shoot(page, "admin-home-dashboard-tenant-admin")


def test_the_workers_page_shows_a_running_job_and_a_superuser_stops_the_worker(browser_page, live_server, worker,
                                                                              acme, root):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 4, "steps": 8})
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=30, what="the job to start")
    page = browser_page
    log_in(page, live_server, "root", "/admin/jobs/job/workers/")
    row = page.locator("#workers tbody tr[data-worker]")
    expect(row).to_have_count(1)
    expect(row.locator(".current-job a")).to_have_text(job.short_id)
    expect(row).to_contain_text("high, default")
    shoot(page, "workers-page")

    row.locator("button[data-stop-worker]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Asked to stop after its current job.")
    # The page refreshes itself: the worker finishes its job, then leaves the list.
    expect(page.locator("#workers")).to_contain_text("No worker is running.", timeout=30_000)
    assert status_of(job) == Status.SUCCEEDED
    assert AuditEvent.objects.get(action=AuditAction.WORKER_STOP).actor == root
    shoot(page, "workers-page-after-stop")


def test_a_running_jobs_log_lines_appear_on_its_page_as_they_are_written(browser_page, live_server, worker, acme,
                                                                        olga):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 6, "steps": 6})
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=30, what="the job to start")
    page = browser_page
    log_in(page, live_server, "olga", f"/admin/jobs/job/{job.pk}/change/")
    log = page.locator("#job-log")
    expect(log).to_contain_text("step 2 of 6 done", timeout=20_000)
    assert "step 6 of 6 done" not in log.inner_text()  # it arrived while the page was open
    shoot(page, "job-page-log-live")
    expect(log).to_contain_text("step 6 of 6 done", timeout=30_000)
    expect(page.locator(f'.job-status[data-live-job="{job.pk}"]')).to_have_text("Succeeded", timeout=30_000)
    expect(log.locator("h2")).to_have_text("Log (7 lines)")
