"""System checks of the operations settings: a typo fails loudly at start, naming the setting."""
from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from jobs.ops.health import CHECKS, THRESHOLDS
from jobs.registry import global_limit_conflicts


@register()
def ops_settings_check(app_configs, **kwargs) -> list[Error]:
    problems = []
    unknown = [name for name in settings.OPS_DOWN_CHECKS if name not in CHECKS or name == "database"]
    if unknown:
        problems.append(Error(f"OPS_DOWN_CHECKS names {unknown}, which are not checks that can be made 'down'.",
                              hint=f"Use any of {', '.join(CHECKS[1:])}.", id="ops.E001"))
    for setting in (*THRESHOLDS.values(), "OPS_CHECK_TIMEOUT", "OPS_METRICS_TIMEOUT", "OPS_METRICS_WINDOW_SECONDS",
                    "OPS_METRICS_TOP_TENANTS", "OPS_REDIS_STATE_CACHE_SECONDS"):
        if getattr(settings, setting) < 0:
            problems.append(Error(f"{setting} is {getattr(settings, setting)}; it must not be negative.",
                                  id="ops.E002"))
    for index, address in enumerate(settings.OPS_ALERT_EMAILS):
        try:
            validate_email(address)
        except ValidationError:
            problems.append(Error(f"OPS_ALERT_EMAILS[{index}] {address!r} is not a valid email address.",
                                  id="ops.E003"))
    url = settings.OPS_ALERT_WEBHOOK_URL
    if url and (urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).hostname):
        problems.append(Error(f"OPS_ALERT_WEBHOOK_URL {url!r} is not an http(s) address with a host.", id="ops.E004"))
    if settings.OPS_ALERT_WEBHOOK_SECRET and not _is_signing_secret(settings.OPS_ALERT_WEBHOOK_SECRET):
        problems.append(Error("OPS_ALERT_WEBHOOK_SECRET is not a signing secret: 'whsec_' and base64 of at least "
                              "24 random bytes.", id="ops.E005"))
    return problems


@register()
def global_limits_check(app_configs, **kwargs) -> list[CheckMessage]:
    """JOBS_QUEUE_LIMITS names configured queues with whole-number limits; and a queue's limit does not
    cover kinds limited on their own: say so, naming them."""
    problems = []
    unknown = sorted(set(settings.JOBS_QUEUE_LIMITS) - set(settings.RQ_QUEUES))
    if unknown:
        problems.append(Error(f"JOBS_QUEUE_LIMITS names {unknown}, which are not configured queues.",
                              hint=f"Use any of {', '.join(settings.RQ_QUEUES)}.", id="ops.E006"))
    for queue, limit in settings.JOBS_QUEUE_LIMITS.items():
        extra = sorted(set(limit) - {"global_concurrency", "global_rate"})
        if extra or any(not isinstance(value, int) or value < 0 for value in limit.values()):
            problems.append(Error(f"JOBS_QUEUE_LIMITS[{queue!r}] is {limit!r}; it takes global_concurrency and "
                                  "global_rate, each a whole number (0: none).", id="ops.E007"))
    for kind in global_limit_conflicts():
        problems.append(Warning(f"{kind} has a limit across tenants of its own and its queue has one too: its jobs "
                                "are under the kind's limit only, not counted in the queue's.",
                                hint="Lift one of the two, or give the kind a queue of its own.", id="ops.W002"))
    return problems


# Bearer tokens that guard scrapes and stats: compared in constant time but not rate limited.
BEARER_TOKENS = ("METRICS_TOKEN", "RQ_API_TOKEN")


@register(deploy=True)
def ops_deploy_check(app_configs, **kwargs) -> list[Warning]:
    return [Warning(f"{name} is shorter than 32 characters.",
                    hint="Use a long random one: python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                    id="ops.W001")
            for name in BEARER_TOKENS if 0 < len(getattr(settings, name)) < 32]


def _is_signing_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    except (binascii.Error, ValueError):
        return False
