"""Run now in a real browser: an operator brings a job scheduled for later forward from its page, and a
worker runs it while the page shows it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent
from tests.browser.test_admin_browser import browser_page, shoot, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_runs_a_scheduled_job_now_and_watches_it_finish(browser_page, live_server, worker, acme, olga):
    job = enqueue("diagnostics.ping", tenant=acme, payload={}, run_at=timezone.now() + timedelta(hours=3))
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/{job.pk}/change/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "olga-pw-1")
    page.click("input[type=submit]")
    expect(page.locator(f'.job-status[data-live-job="{job.pk}"]')).to_have_text("Scheduled")
    page.click('button[data-job-action="run_now"]')
    expect(page.locator("ul.messagelist")).to_contain_text(f"Run now: 1 job queued to run now (job {job.short_id}")
    expect(page.locator(f'.job-status[data-live-job="{job.pk}"]')).to_have_text("Succeeded", timeout=30_000)
    shoot(page, "job-run-now")
    assert AuditEvent.objects.get(action=AuditAction.RUN_NOW).actor == olga
