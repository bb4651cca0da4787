"""A tenant admin manages a cron schedule in the real admin: a typo in the expression is named, the saved
schedule reads in words with its next runs on Berlin's clock, "Run now" runs a real job, "Pause" stops it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.models import AuditAction, AuditEvent
from jobs.schedules.models import Schedule
from tests.browser.test_admin_browser import browser_page, shoot, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_tenant_admin_adds_runs_and_pauses_a_schedule(browser_page, live_server, worker, acme, globex, alice):
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/schedules/schedule/add/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/schedules/schedule/add/")
    assert page.locator("#id_tenant option").all_inner_texts()[-1] == "Acme Corp"
    assert "Globex" not in page.locator("#id_tenant").inner_text()
    kinds = page.locator("#id_kind option").all_inner_texts()
    assert "diagnostics.ping" in kinds and "maintenance.cleanup" not in kinds  # not for tenant staff

    page.select_option("#id_tenant", label="Acme Corp")
    page.fill("#id_name", "Monday health check")
    page.select_option("#id_kind", "diagnostics.ping")
    page.fill("#id_payload", '{"steps": 2}')
    page.fill("#id_cron", "61 2 * * 1")
    page.fill("#id_timezone", "Europe/Berlin")
    page.click("input[name=_continue]")
    expect(page.locator(".errorlist").first).to_contain_text("The minute field '61' is not valid")
    assert page.input_value("#id_name") == "Monday health check"  # what was typed is kept
    shoot(page, "schedule-form-error")

    page.fill("#id_cron", "30 2 * * 1")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    schedule = Schedule.objects.get(name="Monday health check")
    body = page.locator("#content").inner_text()
    assert "At 02:30, only on Monday" in body and "02:30 CET" in body
    assert page.locator("ol.upcoming li").count() == 5

    page.click("button[data-schedule-action=run_now]")
    page.wait_for_url(f"**/schedules/schedule/{schedule.pk}/change/")
    expect(page.locator(".messagelist")).to_contain_text("enqueued")
    for _ in range(40):  # the real worker runs it; the page shows the job's status on each visit
        page.reload()
        if "Succeeded" in page.locator("table.schedule-runs").inner_text():
            break
        page.wait_for_timeout(500)
    expect(page.locator("table.schedule-runs")).to_contain_text("Succeeded")
    expect(page.locator("table.schedule-runs")).to_contain_text("Run now")
    shoot(page, "schedule-change")

    page.click("button[data-schedule-action=pause]")
    expect(page.locator("button[data-schedule-action=resume]")).to_be_visible()
    page.goto(f"{live_server.url}/admin/schedules/schedule/")
    expect(page.locator("#result_list")).to_contain_text("Paused")
    shoot(page, "schedule-list")
    actions = set(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert actions == {AuditAction.SCHEDULE_ADD, AuditAction.SCHEDULE_RUN_NOW, AuditAction.SCHEDULE_PAUSE}
