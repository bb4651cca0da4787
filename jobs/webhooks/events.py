"""Job lifecycle events as webhooks: `job.succeeded` and `job.failed`, for the tenant's own jobs."""
from __future__ import annotations

import logging
import time

from jobs import signals
from jobs.webhooks.models import WebhookEndpoint
from jobs.webhooks.services import webhook_send

logger = logging.getLogger(__name__)

JOB_EVENTS = {"job.succeeded": signals.job_succeeded, "job.failed": signals.job_failed}
# Delivering a webhook must not announce itself as another webhook, and so on forever.
SILENT_KINDS = frozenset({"webhooks.deliver"})
_CACHE_SECONDS = 5.0
_listening: dict[int, tuple[float, frozenset[str] | None]] = {}


def connect() -> None:
    for event_type, signal in JOB_EVENTS.items():
        signal.connect(_announcer(event_type), sender=None, weak=False, dispatch_uid=f"webhooks:{event_type}")


def _announcer(event_type: str):
    def announce(sender, job, attempt=None, **kwargs) -> None:
        if job.tenant_id is None or job.kind in SILENT_KINDS or not _tenant_listens(job.tenant_id, event_type):
            return
        webhook_send(tenant=job.tenant, event_type=event_type, payload=job_summary(job, attempt))

    return announce


def job_summary(job, attempt) -> dict:
    return {
        "id": str(job.pk), "kind": job.kind, "status": job.status, "queue": job.queue,
        "attempts": job.attempts, "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "result": job.result if job.status == "succeeded" else None,
        "error": job.last_error or None,
    }


def _tenant_listens(tenant_id: int, event_type: str) -> bool:
    """Does the tenant have an active endpoint for `event_type`? Cached for a few seconds per process,
    so finishing a job costs no query for tenants without webhooks."""
    now = time.monotonic()
    cached = _listening.get(tenant_id)
    if cached is None or cached[0] < now:
        events: set[str] = set()
        every = False
        for subscribed in WebhookEndpoint.objects.filter(tenant_id=tenant_id, active=True).values_list("events", flat=True):
            every = every or not subscribed
            events.update(subscribed)
        found = None if every else frozenset(events)
        if not every and not events:
            found = frozenset()
        cached = (now + _CACHE_SECONDS, found)
        _listening[tenant_id] = cached
    events = cached[1]
    return events is None or event_type in events


def forget_cache() -> None:
    _listening.clear()
