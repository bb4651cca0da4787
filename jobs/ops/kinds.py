"""The operations job kinds: the minute's alert check and the ops webhook notice."""
from __future__ import annotations

from typing import Literal

from jobs import GiveUp, job_kind


@job_kind("ops.alerts_check", queue="high", system=True, max_attempts=1, timeout=60)
def alerts_check(ctx) -> dict:
    """Compare the health checks with their thresholds; open or resolve incidents and tell the operators.
    Runs every minute from the "Alert check" system schedule (a failed run is not retried: the next
    minute's runs anyway)."""
    from jobs.ops.services import alerts_check as check

    return check()


@job_kind("ops.alert_webhook", queue="high", system=True, max_attempts=6, timeout=60, backoff=30.0, backoff_max=1800.0)
def alert_webhook(ctx, *, incident: int, event: Literal["opened", "resolved"]) -> dict:
    """POST an incident's notice (opened or resolved) to OPS_ALERT_WEBHOOK_URL."""
    from jobs.ops.models import Incident
    from jobs.ops.services import alert_webhook_post

    stored = Incident.objects.filter(pk=incident).first()
    if stored is None:
        raise GiveUp(f"Incident {incident} no longer exists.")
    return alert_webhook_post(incident=stored, event=event)
