"""Deploy checks: development-only webhook settings must not reach production unnoticed."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def webhook_settings_check(app_configs, **kwargs) -> list[Warning]:
    problems = []
    if settings.WEBHOOKS_ALLOW_HTTP:
        problems.append(Warning("WEBHOOKS_ALLOW_HTTP is on: webhooks may be sent unencrypted.",
                                hint="Unset it outside development.", id="webhooks.W001"))
    if settings.WEBHOOKS_ALLOW_LOOPBACK:
        problems.append(Warning("WEBHOOKS_ALLOW_LOOPBACK is on: tenants can make this host call its own "
                                "loopback services.", hint="Unset it outside development.", id="webhooks.W002"))
    return problems
