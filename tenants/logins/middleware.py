"""The lockout page, in place of the login form, for an attempt the throttle refused."""
from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.logins.selectors import ACCOUNT, Lockout


class LoginLockoutMiddleware:
    """After any view: when LoginThrottleBackend refused the request's login, the answer is the lockout
    page (429, Retry-After), whichever login page was used, rather than "wrong password"."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        lockout = getattr(request, "login_lockout", None)
        if lockout is None:
            return response
        return lockout_page(request, lockout)


def lockout_page(request: HttpRequest, lockout: Lockout) -> HttpResponse:
    seconds = lockout.seconds_left()
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "for_account": lockout.scope == ACCOUNT,
        "minutes": (seconds + 59) // 60,
        "login_url": request.get_full_path(),
    }
    # Rendered here: a response that middleware returns is not rendered for it.
    return TemplateResponse(request, "registration/login_locked_out.html", context, status=429,
                            headers={"Retry-After": str(seconds)}).render()
