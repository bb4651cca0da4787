"""The relay: the one gate through which every job reaches RQ.

Two ways in, one way out. New jobs are admitted at enqueue (`admit_new`): admitted rows are stored
already `queued` and pushed right after commit, saving a second write per job. Everything else (rows
left pending, due scheduled and retrying rows) is claimed by `relay` (`-> queued`, row locks, so two
relays never take the same row). Either way the push is `hand_over`, and a failed push puts the rows
back to `pending` for the next pass. Pause and tenant caps belong in `admit_new` and `_due_rows`.

A paused queue's waiting jobs stay in the database: new ones are stored `pending`, due ones are not
claimed, and `hold_paused` takes back the ones already queued in Redis (a worker that pops one anyway
finds its claim refused). Running jobs finish.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from itertools import islice
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import transport
from jobs.models import Job, QueueState, Status, error_fingerprint

logger = logging.getLogger(__name__)

# After a failed push, eager relays (on commit, in a request) skip Redis for this long, so a Redis
# outage does not add a connect timeout to every request. Periodic passes always try.
BACKOFF_SECONDS = 5.0
_redis_down_until = 0.0


def redis_recently_down() -> bool:
    return time.monotonic() < _redis_down_until


# Enqueue asks "is this queue paused?" for every job; a process re-reads the answer at most this often.
# A job admitted in the gap is taken back by the next `hold_paused` pass or refused at its claim.
PAUSED_CACHE_SECONDS = 1.0
_paused_cache: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def paused_queues(*, fresh: bool = False) -> frozenset[str]:
    global _paused_cache
    read_at, names = _paused_cache
    now = time.monotonic()
    if fresh or now - read_at > PAUSED_CACHE_SECONDS:
        names = frozenset(QueueState.objects.filter(paused_at__isnull=False).values_list("name", flat=True))
        _paused_cache = (now, names)
    return names


def forget_paused_cache() -> None:
    global _paused_cache
    _paused_cache = (float("-inf"), frozenset())


def admit_new(count: int, queue: str) -> bool:
    """May `count` new jobs for `queue` go straight to RQ after commit? If not they are stored `pending`."""
    # While Redis is known to be failing, skip the doomed post-commit push; a periodic pass relays.
    return not redis_recently_down() and queue not in paused_queues()


def hold_paused(limit: int = 5000) -> int:
    """Take jobs of paused queues that are queued in Redis back to `pending` in the database."""
    paused = paused_queues(fresh=True)
    if not paused:
        return 0
    with transaction.atomic():
        rows = list(Job.objects.filter(status=Status.QUEUED, queue__in=paused)
                    .select_for_update(skip_locked=True, of=("self",)).values_list("id", "queue")[:limit])
        held = Job.objects.filter(pk__in=[job_id for job_id, _ in rows]).transition(Status.PENDING)
    try:
        transport.remove((str(job_id), queue) for job_id, queue in rows)
    except transport.TransportError as exc:
        logger.warning("Redis unreachable while holding paused jobs (their claims are refused): %s", exc)
    return held


def hand_over(batch: list[transport.Handover]) -> bool:
    """Push rows already marked queued to RQ: the only place jobs reach Redis. False if Redis failed."""
    global _redis_down_until
    routable = [item for item in batch if item.queue in settings.RQ_QUEUES]
    if len(routable) < len(batch):
        _fail_unroutable([item for item in batch if item.queue not in settings.RQ_QUEUES])
    try:
        transport.push(routable)
    except transport.TransportError as exc:
        _release(routable)
        _redis_down_until = time.monotonic() + BACKOFF_SECONDS
        logger.warning("Redis unreachable, %d job(s) stay pending: %s", len(routable), exc)
        return False
    except Exception:
        _release(routable)
        logger.exception("Hand-over of %d job(s) failed; they stay pending", len(routable))
        return False
    return True


def _fail_unroutable(items: list[transport.Handover]) -> None:
    # A queue renamed or removed from settings while jobs still wait on it: fail them visibly rather
    # than let them block every batch they are in.
    for item in items:
        message = f"Queue {item.queue!r} is not configured (RQ_QUEUES); the job cannot run."
        Job.objects.filter(pk=item.job_id, status=Status.QUEUED).transition(
            Status.FAILED, finished_at=timezone.now(), last_error=message,
            error_fingerprint=error_fingerprint(kind=item.kind, error_type="UnknownQueue", message=message),
        )
        logger.error("Job %s failed: queue %r is not configured", item.job_id, item.queue)


def relay(*, job_ids: Collection[UUID] | None = None, eager: bool = False) -> int:
    """Hand due jobs (all, or only `job_ids`) to RQ; return how many were handed over."""
    if eager and redis_recently_down():
        return 0
    handed = 0
    for chunk in _chunks(job_ids):
        while True:
            batch = _claim_batch(chunk)
            if not batch:
                break
            if not hand_over(batch):
                return handed
            handed += len(batch)
            if chunk is not None:
                break
    return handed


def _chunks(job_ids: Collection[UUID] | None) -> Iterator[list[UUID] | None]:
    if job_ids is None:
        yield None
        return
    iterator = iter(job_ids)
    while chunk := list(islice(iterator, settings.JOBS_RELAY_BATCH)):
        yield chunk


def _due_rows(now):
    return Job.objects.due(now).exclude(queue__in=paused_queues(fresh=True))


def _claim_batch(job_ids: list[UUID] | None) -> list[transport.Handover]:
    now = timezone.now()
    with transaction.atomic():
        rows = _due_rows(now)
        if job_ids is not None:
            rows = rows.filter(pk__in=job_ids)
        rows = list(
            rows.select_for_update(skip_locked=True, of=("self",))
            .order_by("run_at", "created_at")
            .values_list("id", "queue", "kind", "tenant__slug", "timeout", "attempts", "enqueued_at")[: settings.JOBS_RELAY_BATCH]
        )
        if not rows:
            return []
        claimed = Job.objects.filter(pk__in=[row[0] for row in rows]).transition(Status.QUEUED, enqueued_at=now)
        if claimed != len(rows):
            # Without row locks (SQLite) another relay may have raced us; re-read what is ours.
            ours = set(Job.objects.filter(pk__in=[r[0] for r in rows], enqueued_at=now).values_list("id", flat=True))
            rows = [row for row in rows if row[0] in ours]
    return [
        transport.Handover(
            job_id=str(job_id),
            queue=queue,
            kind=kind,
            tenant=tenant_slug or "system",
            timeout=timeout,
            # Handed over before (a retry, or Redis lost it): clear what RQ may still hold under the id.
            fresh=attempts == 0 and enqueued_at is None,
        )
        for job_id, queue, kind, tenant_slug, timeout, attempts, enqueued_at in rows
    ]


def _release(batch: list[transport.Handover]) -> None:
    Job.objects.filter(pk__in=[item.job_id for item in batch], status=Status.QUEUED).transition(Status.PENDING)
