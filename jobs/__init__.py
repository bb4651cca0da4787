"""Tracked background jobs: `@job_kind` declares work, `enqueue(...)` asks for it.

    from jobs import job_kind, enqueue

    @job_kind("reports.generate", queue="low", max_attempts=3, timeout=300)
    def generate_report(ctx, *, report_id: int) -> dict: ...

    job = enqueue("reports.generate", tenant=tenant, payload={"report_id": 7}, user=request.user)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.exceptions import GiveUp, RetryAfter, Snooze
from jobs.registry import job_kind

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from jobs.models import Job

__all__ = ["GiveUp", "RetryAfter", "Snooze", "enqueue", "enqueue_many", "job_kind", "progress", "tenant_context"]

# Reading order of the engine (the README's architecture has the picture):
#   registry (`@job_kind`, schemas) -> models (Job, Attempt, transitions) -> services (enqueue, cancel, retry)
#   -> relay (the one gate to RQ) -> transport (RQ and Redis) and rq_lockdown -> workers and runtime (claim,
#   run, record) with postgres (their statements) -> reconciler -> scheduler_process (the clock) -> staff
#   (audited actions) -> selectors -> admin and dashboard. Apps plug in through maintenance (cleaners, system
#   schedules) and signals.
#
# The functions below import what they need when called: this package is loaded while Django registers
# its apps, before any model may be imported.


def enqueue(
    kind: str,
    *,
    tenant,
    payload: dict[str, Any],
    user=None,
    run_at: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_key: str | None = None,
    source: str = "view",
    priority: int = 5,
) -> Job:
    """Store a job of `kind` for `tenant` (None for a system job); it is handed to RQ after commit, or
    when due with `run_at` or `delay` (a timedelta or seconds). `priority` (1 to 10, default 5): among
    a queue's waiting jobs, higher goes first (docs/engine.md says where that order holds)."""
    from jobs.services import job_enqueue

    return job_enqueue(kind=kind, tenant=tenant, payload=payload, user=user, run_at=run_at, delay=delay,
                       idempotency_key=idempotency_key, source=source, priority=priority)


def enqueue_many(kind: str, *, tenant, payloads, user=None, source: str = "view", priority: int = 5) -> list[Job]:
    """Store many jobs of one kind in one INSERT; handed to RQ in one round trip after commit."""
    from jobs.services import job_enqueue_many

    return job_enqueue_many(kind=kind, tenant=tenant, payloads=payloads, user=user, source=source,
                            priority=priority)


def tenant_context(tenant, *, user=None):
    """`with tenant_context(tenant, user=request.user):` work started inside through Django's tasks API
    (`task.enqueue()`) is `tenant`'s and was asked for by `user` (jobs.tenancy)."""
    from jobs.tenancy import tenant_context as context

    return context(tenant, user=user)


def progress(percent: float, message: str = "") -> None:
    """Report the running job's progress (0-100) from anywhere in its code, a Django task's included."""
    from jobs.runtime import progress as report

    report(percent, message)
