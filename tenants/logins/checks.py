"""System checks of the login throttle's settings: a typo fails loudly at start, naming the setting."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def login_throttle_settings_check(app_configs, **kwargs) -> list[Error]:
    problems = []
    for setting in ("LOGIN_THROTTLE_ACCOUNT_FAILURES", "LOGIN_THROTTLE_ADDRESS_FAILURES"):
        if getattr(settings, setting) < 0:
            problems.append(Error(f"{setting} is {getattr(settings, setting)}; it must be 0 (no limit) or more.",
                                  id="logins.E001"))
    if settings.LOGIN_THROTTLE_WINDOW_SECONDS <= 0:
        problems.append(Error(f"LOGIN_THROTTLE_WINDOW_SECONDS is {settings.LOGIN_THROTTLE_WINDOW_SECONDS}; "
                              "it must be more than 0.", id="logins.E002"))
    return problems
