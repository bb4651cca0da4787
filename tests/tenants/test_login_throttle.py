"""Failed logins lock the account tried and the address they came from, for a window, on both login pages."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tenants.logins.models import LoginFailure

ADMIN_LOGIN = "/admin/login/"
SITE_LOGIN = "/accounts/login/"
HOME = "203.0.113.7"  # the attacker's and alice's address alike, unless a test says otherwise
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def log_in(client, username: str, password: str, *, page: str = ADMIN_LOGIN, address: str = HOME, **headers):
    return client.post(page, {"username": username, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address, **headers)


def fail(client, username: str, times: int, **kwargs) -> None:
    for _ in range(times):
        response = log_in(client, username, "not-the-password", **kwargs)
        assert response.status_code == 200, response.status_code  # the form again, "wrong password"


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", [ADMIN_LOGIN, SITE_LOGIN])
def test_it_refuses_the_right_password_after_five_failures_and_says_how_long_to_wait(client, alice, clock, page):
    fail(client, "alice", 4, page=page)
    assert log_in(client, "alice", "alice-pw-1", page=page).status_code == 302  # four are forgiven
    client.logout()
    fail(client, "alice", 5, page=page)

    response = log_in(client, "alice", "alice-pw-1", page=page)

    assert response.status_code == 429 and not logged_in(client)
    assert response["Retry-After"] == "900"
    page_text = response.content.decode()
    assert "Too many failed logins for this account." in page_text
    assert "Try again in 15 minutes." in page_text
    assert 'class="errornote"' in page_text and "admin/css/login.css" in page_text  # the admin's own look
    assert f'href="{page}"' in page_text  # and the way back


def test_it_says_the_wait_that_is_left(client, alice, clock):
    fail(client, "alice", 5)
    clock.shift(timedelta(minutes=13, seconds=30))
    response = log_in(client, "alice", "alice-pw-1")
    assert "Try again in 2 minutes." in response.content.decode()
    assert response["Retry-After"] == "90"


def test_it_lets_the_account_in_again_once_the_window_has_passed(client, alice, clock):
    fail(client, "alice", 5)
    clock.shift(timedelta(minutes=14, seconds=59))
    assert log_in(client, "alice", "alice-pw-1").status_code == 429
    clock.shift(timedelta(seconds=2))
    assert log_in(client, "alice", "alice-pw-1").status_code == 302 and logged_in(client)


def test_attempts_it_refused_do_not_make_the_lockout_last_longer(client, alice, clock):
    fail(client, "alice", 5)
    for _ in range(30):  # someone keeps hammering during the lockout
        clock.shift(timedelta(seconds=20))
        assert log_in(client, "alice", "guess").status_code == 429
    clock.move_to(START + timedelta(minutes=15, seconds=1))
    assert log_in(client, "alice", "alice-pw-1").status_code == 302


def test_another_account_from_the_same_address_gets_in_until_the_address_limit(client, alice, charlie, clock):
    fail(client, "alice", 5)
    assert log_in(client, "charlie", "charlie-pw-1").status_code == 302
    client.logout()
    fail(client, "nobody", 5)
    for number in range(10):  # one guess each at many names: every one counts against the address
        fail(client, f"user{number}", 1)

    response = log_in(client, "charlie", "charlie-pw-1")

    assert response.status_code == 429 and not logged_in(client)
    assert "Too many failed logins from your network address." in response.content.decode()
    # Charlie from elsewhere is not affected; alice's account stays locked wherever she tries from.
    assert log_in(client, "charlie", "charlie-pw-1", address="198.51.100.20").status_code == 302
    client.logout()
    assert log_in(client, "alice", "alice-pw-1", address="198.51.100.20").status_code == 429


def test_a_successful_login_forgives_the_account_but_not_the_address(client, alice, settings, clock):
    settings.LOGIN_THROTTLE_ADDRESS_FAILURES = 8
    fail(client, "alice", 4)
    assert log_in(client, "alice", "alice-pw-1").status_code == 302
    client.logout()
    fail(client, "alice", 3)
    assert log_in(client, "alice", "alice-pw-1").status_code == 302  # 3 since her login, not 7
    client.logout()
    fail(client, "alice", 1)
    assert log_in(client, "alice", "alice-pw-1").status_code == 429  # but the address has had 8


def test_it_counts_each_client_behind_a_trusted_proxy_by_its_own_address(client, alice, charlie, settings, clock):
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.10"]
    via_proxy = {"address": "10.0.0.10"}
    # A client that sends its own X-Forwarded-For gets the proxy's entry appended: that is what counts.
    for number in range(20):
        fail(client, f"user{number}", 1, **via_proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{number}, 198.51.100.1")
    assert log_in(client, "alice", "alice-pw-1", **via_proxy,
                  HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert log_in(client, "charlie", "charlie-pw-1", **via_proxy,
                  HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 302
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"198.51.100.1"}


def test_it_ignores_x_forwarded_for_from_anyone_but_a_trusted_proxy(client, charlie, settings, clock):
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.10"]
    for number in range(20):
        fail(client, f"user{number}", 1, address="198.51.100.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")
    assert log_in(client, "charlie", "charlie-pw-1", address="198.51.100.9",
                  HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_it_counts_an_ipv6_client_by_its_64_network(client, charlie, clock):
    for number in range(20):
        fail(client, f"user{number}", 1, address=f"2001:db8:1:2::{number + 1:x}")
    assert log_in(client, "charlie", "charlie-pw-1", address="2001:db8:1:2:ffff::1").status_code == 429
    assert log_in(client, "charlie", "charlie-pw-1", address="2001:db8:1:3::1").status_code == 302


def test_it_keeps_only_one_window_of_failures(client, clock):
    fail(client, "alice", 3)
    clock.shift(timedelta(minutes=16))
    fail(client, "bob", 1)
    assert list(LoginFailure.objects.values_list("username", flat=True)) == ["bob"]


def test_it_refuses_to_start_with_a_negative_limit(settings):
    settings.LOGIN_THROTTLE_ACCOUNT_FAILURES = -1
    with pytest.raises(SystemCheckError, match="LOGIN_THROTTLE_ACCOUNT_FAILURES is -1"):
        call_command("check")
