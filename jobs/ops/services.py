"""Alerts: the minute's check opens an incident when a check has crossed its threshold on
OPS_ALERT_OPEN_AFTER checks in a row and resolves it when it has been clear on OPS_ALERT_RESOLVE_AFTER,
telling the operators once each time (email to OPS_ALERT_EMAILS, a POST to OPS_ALERT_WEBHOOK_URL). The
runs are counted per check (`CheckStreak`), so a value flapping at its threshold neither opens nor
closes an incident every minute.

Once per incident because the database says so: one open incident per check (a partial unique index),
resolving is a conditional UPDATE, and a streak counts one minute's check once however many run, so two
checks running at once neither open nor resolve twice. The email goes through the email ledger (one
message per incident and event) and the POST is a job of its own with retries, both stored in the same
transaction as the incident's change.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import GiveUp, enqueue
from jobs.mail.services import email_send
from jobs.models import Source
from jobs.ops import health
from jobs.ops.models import CheckStreak, Incident
from jobs.webhooks import destination, signing

logger = logging.getLogger(__name__)

ALERTS_KIND = "ops.alerts_check"
WEBHOOK_KIND = "ops.alert_webhook"
SCHEDULE_NAME = "Alert check"
OPENED, RESOLVED = "opened", "resolved"


class AlertNotDelivered(Exception):
    """The ops webhook did not take the notice; the job retries it."""


def alerts_check(*, now: datetime | None = None) -> dict[str, Any]:
    """Compare every alerting check with its threshold, count the run it is on, and open, update or
    resolve incidents. The result names the checks whose incidents opened, resolved or went on, and
    those crossed, or clear, on too few checks in a row yet to open or resolve one (`crossing`,
    `clearing`). A check that could not be read (Redis down for the workers check) leaves its
    incident and its run as they are."""
    if not settings.OPS_ALERTS_ENABLED:
        return {"skipped": "Alerts are off (OPS_ALERTS_ENABLED)."}
    now = now or timezone.now()
    readiness = health.readiness(now=now)
    open_incidents = {incident.check_name: incident for incident in Incident.objects.filter(resolved_at__isnull=True)}
    report: dict[str, Any] = {"status": readiness.status, "opened": [], "resolved": [], "ongoing": [],
                              "crossing": [], "clearing": []}
    for name in health.ALERTING:
        check = readiness.checks[name]
        if check.status == health.UNKNOWN:
            continue
        streak = CheckStreak.record(check_name=name, crossed=check.crossed, now=now)
        outcome = _alert_step(check=check, incident=open_incidents.get(name), streak=streak, now=now)
        if outcome is not None:
            report[outcome].append(name)
    return report


def _alert_step(*, check: health.Check, incident: Incident | None, streak: CheckStreak, now: datetime) -> str | None:
    """What one check's finding does to its incident, as the report names it (None: nothing to say)."""
    if check.crossed and incident is not None:
        incident_update(incident=incident, check=check, now=now)
        return "ongoing"
    if check.crossed and streak.count < settings.OPS_ALERT_OPEN_AFTER:
        return "crossing"
    if check.crossed:
        return "opened" if incident_open(check=check, now=now, since=streak.since) is not None else None
    if incident is None:
        return None
    if streak.count < settings.OPS_ALERT_RESOLVE_AFTER:
        return "clearing"
    return "resolved" if incident_resolve(incident=incident, check=check, now=now, since=streak.since) else None


def incident_open(*, check: health.Check, now: datetime, since: datetime | None = None) -> Incident | None:
    """Open the check's incident, dated from the first check of the run that crossed (`since`), and
    tell the operators; None if one was already open."""
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                check_name=check.name, summary=check.reason[:300], value=check.value, threshold=check.threshold,
                peak_value=check.value, last_summary=check.reason[:300], opened_at=since or now, last_seen_at=now)
            incident_notify(incident=incident, event=OPENED)
    except IntegrityError:
        return None  # another check opened it a moment ago, and told
    logger.warning("Incident opened: %s", incident.summary)
    return incident


def incident_update(*, incident: Incident, check: health.Check, now: datetime) -> None:
    """Still crossed: remember the latest finding and the peak; nobody is told again."""
    values = [value for value in (incident.peak_value, check.value) if value is not None]
    peak = max(values) if values else None
    Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
        last_seen_at=now, last_summary=check.reason[:300], peak_value=peak)


def incident_resolve(*, incident: Incident, check: health.Check, now: datetime, since: datetime | None = None) -> bool:
    """Close the incident, dated from the first check of the run that found it clear (`since`), and
    tell the operators it recovered; False if it was already closed."""
    resolved_at = since or now
    with transaction.atomic():
        closed = Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
            resolved_at=resolved_at, resolution=check.reason[:300])
        if closed:
            incident.resolved_at, incident.resolution = resolved_at, check.reason[:300]
            incident_notify(incident=incident, event=RESOLVED)
    if closed:
        logger.warning("Incident resolved: %s (%s)", incident.check_name, incident.resolution)
    return bool(closed)


def incident_notify(*, incident: Incident, event: str) -> None:
    """Store the email to the operators and the webhook job, in the caller's transaction."""
    subject, text = incident_message(incident=incident, event=event)
    if settings.OPS_ALERT_EMAILS:
        email_send(tenant=None, to=settings.OPS_ALERT_EMAILS, subject=subject, text=text,
                   key=f"ops-incident:{incident.pk}:{event}", source=Source.JOB)
    if settings.OPS_ALERT_WEBHOOK_URL:
        enqueue(WEBHOOK_KIND, tenant=None, payload={"incident": incident.pk, "event": event}, source=Source.JOB)


def incident_message(*, incident: Incident, event: str) -> tuple[str, str]:
    """Subject and text of a notice: what crossed (or cleared), when, and where to look."""
    admin_url = settings.SITE_URL.rstrip("/") + f"/admin/ops/incident/{incident.pk}/change/"
    if event == OPENED:
        subject = f"Incident: {incident.summary}"
        lines = [f"The {incident.check_name} check crossed its threshold at "
                 f"{incident.opened_at:%Y-%m-%d %H:%M:%S} UTC.", "", incident.summary]
    else:
        subject = f"Resolved: {incident.check_name} ({incident.summary})"
        lines = [f"The {incident.check_name} check is back under its threshold since "
                 f"{incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC, after {_minutes(incident)}.", "",
                 f"Opened with: {incident.summary}", f"Now: {incident.resolution}"]
    lines += ["", f"Incident: {admin_url}", f"Readiness: {settings.SITE_URL.rstrip('/')}/readyz"]
    return subject[:200], "\n".join(lines) + "\n"


def _minutes(incident: Incident) -> str:
    minutes = max(1, round(incident.duration.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def alert_webhook_post(*, incident: Incident, event: str) -> dict[str, Any]:
    """POST one notice to OPS_ALERT_WEBHOOK_URL through the SSRF-safe webhook sender; the body of
    `ops.alert_webhook`. Signed like tenant webhooks when OPS_ALERT_WEBHOOK_SECRET is set."""
    url = settings.OPS_ALERT_WEBHOOK_URL
    if not url:
        raise GiveUp("OPS_ALERT_WEBHOOK_URL is not set (any more); nothing was sent.")
    body = json.dumps(alert_body(incident=incident, event=event), separators=(",", ":"))
    message_id, timestamp = f"incident_{incident.pk}_{event}", int(time.time())
    headers = {"Content-Type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if settings.OPS_ALERT_WEBHOOK_SECRET:
        headers["webhook-signature"] = signing.sign(secret=settings.OPS_ALERT_WEBHOOK_SECRET, message_id=message_id,
                                                    timestamp=timestamp, body=body)
    reply = destination.destination_post(url, body=body.encode(), headers=headers)
    if reply.status_code is not None and 200 <= reply.status_code < 300 and not reply.error:
        return {"status_code": reply.status_code, "duration_ms": reply.duration_ms}
    summary = reply.error or f"HTTP {reply.status_code}"
    if reply.refused:
        raise GiveUp(summary)
    raise AlertNotDelivered(summary)


def alert_body(*, incident: Incident, event: str) -> dict[str, Any]:
    subject, _ = incident_message(incident=incident, event=event)
    return {
        "type": f"ops.incident.{event}",
        "text": subject,  # what chat receivers (Slack-style incoming webhooks) show
        "incident": {
            "id": incident.pk, "check": incident.check_name, "summary": incident.summary, "value": incident.value,
            "threshold": incident.threshold, "peak_value": incident.peak_value,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "resolution": incident.resolution,
        },
    }
