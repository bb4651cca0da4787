"""A refused page in a real browser: the admin's own chrome, the role's reach and whom to ask."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_meets_a_refusal_in_the_admins_look_with_whom_to_ask(browser_page, live_server, acme, victor,
                                                                       alice):
    alice.email = "alice@acme.test"
    alice.save()
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "victor")
    page.fill("#id_password", "victor-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    response = page.goto(f"{live_server.url}/admin/schedules/schedule/add/")
    assert response.status == 403
    expect(page.locator("#site-name")).to_be_visible()
    expect(page.locator(".refusal-roles")).to_contain_text("Viewer of Acme Corp")
    expect(page.locator(".refusal-roles")).to_contain_text("ask Acme Corp's admin: alice <alice@acme.test>")
    shoot(page, "refusal-403")
    page.click("text=Admin home")
    page.wait_for_url("**/admin/")
