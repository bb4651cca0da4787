"""The throttle's place in authentication: the first of AUTHENTICATION_BACKENDS."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from tenants.logins.addresses import client_address
from tenants.logins.selectors import login_lockout


class LoginThrottleBackend:
    """Refuses every password, the right one too, for a locked-out account or address, before any is checked.

    Otherwise it authenticates nobody and the next backend decides. It has no get_user, so no session
    ever names it. A refusal marks the request (`request.login_lockout`); LoginLockoutMiddleware then
    answers with the lockout page instead of the login form.
    """

    def authenticate(self, request, username: str | None = None, **credentials) -> None:
        if request is None:
            return None
        username = username or credentials.get(get_user_model().USERNAME_FIELD)
        lockout = login_lockout(username=username, address=client_address(request))
        if lockout is not None:
            request.login_lockout = lockout
            # Django's authenticate() stops at PermissionDenied: no later backend checks the password.
            raise PermissionDenied("Too many failed logins.")
        return None

    async def aauthenticate(self, request, username: str | None = None, **credentials) -> None:
        return await sync_to_async(self.authenticate)(request, username, **credentials)
