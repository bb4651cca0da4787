"""System checks of settings that belong to no app: the proxy in front of the web process."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, register


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
