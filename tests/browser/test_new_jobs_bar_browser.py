"""The jobs list in a real browser: jobs made while it is open are offered by a "N new jobs, show" bar,
and showing them lists them."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs import enqueue
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_new_jobs_arrive_as_a_bar_and_show_on_click(browser_page, live_server, acme, globex, olga):
    enqueue("diagnostics.ping", tenant=acme, payload={})
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "olga-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/jobs/job/")
    expect(page.locator("#new-jobs")).to_be_hidden()

    arrived = [enqueue("diagnostics.ping", tenant=acme, payload={"steps": n + 1}) for n in range(2)]
    enqueue("diagnostics.ping", tenant=globex, payload={})  # not olga's: never counted
    expect(page.locator("#new-jobs")).to_have_text("2 new jobs, show", timeout=15_000)
    shoot(page, "jobs-new-jobs-bar")
    page.click("#new-jobs a")
    for job in arrived:
        expect(page.locator("#result_list")).to_contain_text(job.short_id)
    expect(page.locator("#new-jobs")).to_be_hidden()
