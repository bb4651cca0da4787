"""Signal receivers (connected in LoginsConfig.ready): Django's login signals feed the throttle."""
from __future__ import annotations

from django.contrib.auth import get_user_model

from tenants.logins.addresses import client_address
from tenants.logins.services import login_failure_record, login_failures_forgive


def count_failed_login(sender, credentials: dict, request=None, **kwargs) -> None:
    # No request: authenticate() called by code, not a login over HTTP. A refused attempt during a
    # lockout checked no password, so it is no guess; counting it would keep the lockout going forever.
    if request is None or getattr(request, "login_lockout", None) is not None:
        return
    username = credentials.get("username") or credentials.get(get_user_model().USERNAME_FIELD)
    login_failure_record(username=username, address=client_address(request))


def forgive_account(sender, request, user, **kwargs) -> None:
    login_failures_forgive(username=user.get_username())
