"""System checks of settings that belong to no app: the proxy in front of the web process and the
django-rq dashboard's token."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def proxy_settings_check(app_configs, **kwargs) -> list[Error]:
    problems = []
    for entry in settings.FORWARDED_ALLOW_IPS:
        try:
            if entry != "*":
                ipaddress.ip_address(entry)
        except ValueError:
            problems.append(Error(f"FORWARDED_ALLOW_IPS names {entry!r}, which is not an IP address.",
                                  hint="List the proxies' addresses, comma-separated (gunicorn takes no "
                                       "networks), or '*'.", id="config.E001"))
    return problems


@register(Tags.security, deploy=True)
def rq_api_token_check(app_configs, **kwargs) -> list[Warning]:
    # The same bar as METRICS_TOKEN's (jobs.ops.checks): both are bearer tokens with no rate limit.
    token = settings.RQ_API_TOKEN
    if token and len(token) < 32:
        return [Warning("RQ_API_TOKEN is shorter than 32 characters.",
                        hint="Use a long random one: python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                        id="config.W001")]
    return []
