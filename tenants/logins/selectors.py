"""Reads of the login throttle: is this account or this address locked out, and until when."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from tenants.logins.addresses import address_key
from tenants.logins.models import LoginFailure

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class Lockout:
    """Logins for this account, or from this address, are refused until `until`."""

    scope: str  # ACCOUNT or ADDRESS
    until: datetime

    def seconds_left(self) -> int:
        return max(1, math.ceil((self.until - timezone.now()).total_seconds()))


def account_key(username: str | None) -> str | None:
    """The name as the throttle counts it: one account however its name is capitalised."""
    return username.strip().casefold()[:150] if username else None


def login_lockout(*, username: str | None, address: str) -> Lockout | None:
    """The lockout in force for this account name or this client address (the one that ends last), or None.

    A lockout ends on its own: once the window has passed over enough of the failures that caused it.
    """
    window = timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW_SECONDS)
    recent = LoginFailure.objects.filter(at__gt=timezone.now() - window)
    limits = [(ADDRESS, recent.filter(address=address_key(address)), settings.LOGIN_THROTTLE_ADDRESS_FAILURES)]
    if account := account_key(username):
        limits.append((ACCOUNT, recent.filter(username=account), settings.LOGIN_THROTTLE_ACCOUNT_FAILURES))
    lockouts = []
    for scope, failures, limit in limits:
        if limit <= 0:
            continue
        # The limit-th newest failure: while it is inside the window, `limit` failures are.
        oldest_counted = list(failures.order_by("-at").values_list("at", flat=True)[limit - 1:limit])
        if oldest_counted:
            lockouts.append(Lockout(scope=scope, until=oldest_counted[0] + window))
    return max(lockouts, key=lambda lockout: lockout.until, default=None)
