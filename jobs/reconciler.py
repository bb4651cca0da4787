"""The reconciler: compares the database with Redis and repairs the drift.

- pending rows and due scheduled/retrying rows are handed over (the relay);
- queued rows whose RQ job Redis lost (restart without persistence, FLUSHALL) are handed over again;
- queued rows of paused queues are taken back to pending;
- running rows whose worker stopped heartbeating (kill -9, lost host) get an `abandoned` attempt and
  then retry or fail like any other failure.

It runs inside the processes that exist anyway: workers between jobs and the rq-scheduler process,
with a Redis lock so that one pass runs per interval however many processes there are.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone

from jobs import runtime, transport
from jobs.models import Attempt, Job, Outcome, Status, Trigger
from jobs.batches import batches_repair
from jobs.relay import hold_paused, relay

logger = logging.getLogger(__name__)

LOST_CHECK_LIMIT = 5000


@dataclass
class ReconcileReport:
    abandoned: int = 0
    requeued_lost: int = 0
    relayed: int = 0
    held: int = 0
    batches: int = 0

    def __str__(self) -> str:
        return (f"{self.abandoned} abandoned attempt(s) rescued, {self.requeued_lost} lost job(s) requeued, "
                f"{self.relayed} job(s) handed over, {self.held} job(s) of paused queues held back, "
                f"{self.batches} batch member(s) moved on")

    @property
    def repaired_anything(self) -> bool:
        return bool(self.abandoned or self.requeued_lost or self.relayed or self.held or self.batches)


def reconcile() -> ReconcileReport:
    """One full pass. Safe to run from several processes at once."""
    report = ReconcileReport(abandoned=rescue_abandoned())
    try:
        report.requeued_lost = requeue_lost()
    except transport.TransportError as exc:
        logger.warning("Reconciler: Redis unreachable, lost-job check skipped: %s", exc)
    report.held = hold_paused()
    report.batches = batches_repair()  # before the relay, so a chain step it starts goes out in this pass
    report.relayed = relay()
    if report.repaired_anything:
        logger.info("Reconciler: %s", report)
    return report


def reconcile_if_leader() -> ReconcileReport | None:
    """A pass, unless another process ran one within the last interval."""
    try:
        if not transport.acquire_lock("jobs:reconcile:lock", ttl=settings.JOBS_RECONCILE_SECONDS):
            return None
    except transport.TransportError:
        pass  # Without Redis there is no lock, but rescuing dead attempts needs only the database.
    return reconcile()


def rescue_abandoned() -> int:
    # On the database's clock, as heartbeats are written: hosts' clocks may disagree by more than the window.
    cutoff = ExpressionWrapper(Now() - timedelta(seconds=settings.JOBS_ABANDON_AFTER_SECONDS),
                               output_field=DateTimeField())
    stale = Attempt.objects.filter(ended_at__isnull=True, heartbeat_at__lt=cutoff, job__status=Status.RUNNING)
    rescued = 0
    for attempt in stale.select_related("job", "job__tenant"):
        result = runtime.AttemptResult(
            Outcome.ABANDONED,
            error_type="WorkerLost",
            error_class="jobs.exceptions.WorkerLost",
            error_message=(f"No heartbeat from worker {attempt.worker_name} (pid {attempt.pid} on "
                           f"{attempt.hostname}) since {attempt.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"),
        )
        claim = runtime.Claim(job=attempt.job, attempt=attempt)
        if runtime.attempt_finish(claim=claim, result=result, retry_trigger=Trigger.RESCUE):
            rescued += 1
    return rescued


def requeue_lost() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.JOBS_LOST_AFTER_SECONDS)
    queued = Job.objects.filter(status=Status.QUEUED, enqueued_at__lt=cutoff)
    candidates = [str(pk) for pk in queued.values_list("id", flat=True)[:LOST_CHECK_LIMIT]]
    lost = transport.missing(candidates)
    if not lost:
        return 0
    return queued.filter(pk__in=lost).transition_logged(Status.PENDING, reason="lost by Redis")
