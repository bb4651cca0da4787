"""The login throttle in a real browser: after five wrong passwords the right one meets the lockout page."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def submit_login(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_it_shows_a_locked_out_account_the_wait_in_the_admin_s_look(browser_page, live_server, alice):
    page = browser_page
    for _ in range(5):
        submit_login(page, live_server, "alice", "not-her-password")
        expect(page.locator(".errornote")).to_contain_text("Please enter the correct username and password")

    submit_login(page, live_server, "alice", "alice-pw-1")

    expect(page.locator(".errornote")).to_have_text(
        "Too many failed logins for this account. Try again in 15 minutes.", use_inner_text=True)
    expect(page.locator("#site-name")).to_be_visible()  # the admin's header, not a bare error
    shoot(page, "login-locked-out")
    page.click("text=Back to the login page")
    expect(page.locator("#login-form")).to_be_visible()
