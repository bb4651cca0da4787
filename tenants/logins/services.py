"""Writes of the login throttle: a failed login is counted, a successful one forgives its account."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tenants.logins.addresses import address_key
from tenants.logins.models import LoginFailure
from tenants.logins.selectors import account_key


def login_failure_record(*, username: str | None, address: str) -> None:
    """Count one failed login against this account name and this client address.

    Failures older than the window are deleted on the way: the table holds one window's worth.
    """
    now = timezone.now()
    LoginFailure.objects.filter(at__lte=now - timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW_SECONDS)).delete()
    LoginFailure.objects.create(username=account_key(username), address=address_key(address), at=now)


def login_failures_forgive(*, username: str) -> None:
    """After a successful login, the account's earlier failures stop counting against it. They still count
    against the addresses they came from: logging in to one account must not buy guesses at others."""
    LoginFailure.objects.filter(username=account_key(username)).update(username=None)
