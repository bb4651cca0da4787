"""Writes: enqueue, cancel, stop, retry, delete. Views, admin actions, commands and the API call these."""
from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from jobs import relay as relay_module
from jobs import eventlog, postgres, pusher, signals, transport
from jobs.models import (
    DEFAULT_PRIORITY, PRIORITIES, TERMINAL, WAITING, Attempt, Job, Source, Status, Trigger, new_job_id,
)
from jobs.registry import Kind, get_kind
from tenants.models import Tenant

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 200
MAX_DELAY = timedelta(days=10 * 365)


class JobStateError(ValidationError):
    """The job is not in a state that allows this action."""


def job_enqueue(
    *,
    kind: str,
    tenant: Tenant | None,
    payload: Mapping[str, Any],
    user=None,
    run_at: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_key: str | None = None,
    source: str = Source.VIEW,
    batch=None,
    batch_position: int | None = None,
    queue: str | None = None,
    priority: int = DEFAULT_PRIORITY,
) -> Job:
    """Store a job in the caller's transaction and hand it to RQ after commit.

    With `run_at` (or `delay`, a timedelta or seconds) the job waits `scheduled` in the database until
    due. Bad input raises a ValidationError naming the field; nothing is stored then. With an
    idempotency key, an unfinished job of the same tenant and key is returned instead of a new one.
    """
    spec = get_kind(kind)
    if delay is not None:
        run_at = _run_at_after(delay, run_at)
    job = _build_job(spec, tenant=tenant, payload=payload, user=user, run_at=run_at,
                     idempotency_key=idempotency_key, source=source, queue=queue, priority=priority)
    if batch is not None:
        job.batch, job.batch_position = batch, batch_position
    if idempotency_key is None:
        _insert([job])
    else:
        existing = _insert_or_existing(job)
        if existing is not None:
            return existing
    _after_commit([job])
    return job


def _after_commit(jobs: list[Job]) -> None:
    """Admitted jobs are pushed; held jobs are offered to `refill` at once while their tenant has room."""
    if jobs[0].status == Status.QUEUED:
        transaction.on_commit(partial(_push_after_commit, jobs), robust=True)
    elif jobs[0].status == Status.PENDING and relay_module.global_scope(jobs[0].kind, jobs[0].queue) is not None:
        # Limited across tenants: the limit's refill decides at once, under its lock.
        transaction.on_commit(partial(relay_module.slot_freed, jobs[0].tenant_id, kind=jobs[0].kind,
                                      queue=jobs[0].queue, sampled=False), robust=True)
    elif (jobs[0].progress_message in (relay_module.HELD_AT_LIMIT, relay_module.HELD_KIND_LIMIT)
          and relay_module.may_have_room(jobs[0].tenant_id, jobs[0].kind)):
        # Held below the limit (admission stops at half of it): a refill may hand them over at once.
        transaction.on_commit(partial(relay_module.slot_freed, jobs[0].tenant_id, kind=jobs[0].kind, sampled=False),
                              robust=True)


def job_enqueue_many(
    *,
    kind: str,
    tenant: Tenant | None,
    payloads: Iterable[Mapping[str, Any]],
    user=None,
    source: str = Source.VIEW,
    batch=None,
    priority: int = DEFAULT_PRIORITY,
) -> list[Job]:
    """Enqueue many jobs of one kind with one INSERT and one Redis round trip.

    Every payload is validated first; one bad payload rejects the whole batch, with errors named
    `payloads[i].field`, and nothing is stored.
    """
    spec = get_kind(kind)
    _check_tenant(tenant)
    _check_priority(priority)
    stored = spec.validate_many(list(payloads))
    now = timezone.now()
    held = relay_module.hold_reason(len(stored), queue=spec.queue, tenant_id=tenant.pk if tenant else None,
                                    kind=spec.name)
    status = Status.QUEUED if held is None else Status.PENDING
    jobs = _new_jobs(spec, tenant=tenant, payloads=stored, user=user, source=source, status=status, now=now,
                     progress_message=held or "", batch=batch, priority=priority)
    _insert(jobs)
    if jobs:
        _after_commit(jobs)
    return jobs


_ATTNAMES = [f.attname for f in Job._meta.concrete_fields]
_ID_INDEX, _PAYLOAD_INDEX = _ATTNAMES.index("id"), _ATTNAMES.index("payload")


def _new_jobs(spec: Kind, *, tenant, payloads: list[dict[str, Any]], user, source, status, now,
              progress_message: str = "", batch=None, priority: int = DEFAULT_PRIORITY) -> list[Job]:
    """Jobs alike but for id and payload, built the fast way (positional values, like fetched rows)."""
    if not payloads:
        return []
    first = _new_job(spec, tenant=tenant, payload=payloads[0], user=user, source=source, status=status, now=now,
                     progress_message=progress_message, priority=priority)
    first.batch_id = batch.pk if batch is not None else None
    base = [getattr(first, attname) for attname in _ATTNAMES]
    jobs = [first]
    for payload in payloads[1:]:
        values = base.copy()
        values[_ID_INDEX], values[_PAYLOAD_INDEX] = new_job_id(), payload
        jobs.append(Job(*values))
    if tenant is not None:
        for job in jobs[1:]:
            Job.tenant.field.set_cached_value(job, tenant)
    return jobs


def job_build_waiting(*, kind: str, tenant, payload, user, source, batch, batch_position: int, message: str) -> Job:
    """A chain's later step: checked now, stored `scheduled` without a time (never due) until its turn."""
    spec = get_kind(kind)
    _check_tenant(tenant)
    job = _new_job(spec, tenant=tenant, payload=spec.validate(payload), user=user, source=source,
                   status=Status.SCHEDULED, now=timezone.now(), progress_message=message)
    job.batch, job.batch_position = batch, batch_position
    return job


def jobs_insert(jobs: list[Job]) -> None:
    """Store jobs built here (one statement); nothing is handed to RQ."""
    if jobs:
        _insert(jobs)


def _insert(jobs: list[Job]) -> None:
    if postgres.supported():
        postgres.insert_jobs(jobs)
    else:
        Job.objects.bulk_create(jobs, batch_size=1000)
    if eventlog.events.isEnabledFor(logging.INFO):
        transaction.on_commit(partial(eventlog.jobs_created, jobs), robust=True)


def _build_job(spec: Kind, *, tenant, payload, user, source, run_at=None, idempotency_key=None,
               queue: str | None = None, priority: int = DEFAULT_PRIORITY) -> Job:
    _check_tenant(tenant)
    _check_priority(priority)
    stored = spec.validate(payload)
    _check_key(idempotency_key)
    if queue is not None and queue not in settings.RQ_QUEUES:
        raise ValidationError({"queue": [f"Unknown queue {queue!r}; the queues are {', '.join(settings.RQ_QUEUES)}."]})
    now = timezone.now()
    if run_at is not None and timezone.is_naive(run_at):
        raise ValidationError({"run_at": ["Must be timezone-aware."]})
    if run_at is not None:
        run_at = run_at.astimezone(UTC)  # PostgreSQL stores offsets up to 15:59 only; Python allows a day
    if run_at is not None and run_at - now > MAX_DELAY:
        raise ValidationError({"run_at": ["Must be within ten years from now."]})
    scheduled = run_at is not None and run_at > now
    # An admitted job is stored queued and pushed right after commit (one write instead of two). If
    # the process dies between commit and push, the reconciler finds a queued job Redis never got.
    held = None
    if scheduled:
        status = Status.SCHEDULED
    else:
        held = relay_module.hold_reason(1, queue=queue or spec.queue, tenant_id=tenant.pk if tenant else None,
                                        kind=spec.name)
        status = Status.QUEUED if held is None else Status.PENDING
    return _new_job(spec, tenant=tenant, payload=stored, user=user, source=source, status=status, now=now,
                    run_at=run_at if scheduled else None, idempotency_key=idempotency_key,
                    progress_message=held or "", queue=queue, priority=priority)


def _new_job(spec: Kind, *, tenant, payload, user, source, status, now, run_at=None, idempotency_key=None,
             progress_message: str = "", queue: str | None = None, priority: int = DEFAULT_PRIORITY) -> Job:
    values = dict(_defaults())
    values.update(
        id=new_job_id(),
        tenant_id=tenant.pk if tenant is not None else None,
        kind=spec.name,
        queue=queue or spec.queue,
        payload=payload,
        status=status,
        max_attempts=spec.max_attempts,
        timeout=spec.timeout,
        run_at=run_at,
        created_at=now,
        updated_at=now,
        enqueued_at=now if status == Status.QUEUED else None,
        enqueued_by_id=user.pk if getattr(user, "is_authenticated", False) else None,
        source=source,
        idempotency_key=idempotency_key,
        progress_message=progress_message,
        request_id=eventlog.current_request_id(),
        priority=priority,
    )
    # Positional construction, as Django does for fetched rows: a fraction of the keyword path's cost.
    job = Job(*values.values())
    if tenant is not None:
        Job.tenant.field.set_cached_value(job, tenant)
    return job


@functools.cache
def _defaults() -> dict[str, Any]:
    return {field.attname: field.get_default() for field in Job._meta.concrete_fields}


def _run_at_after(delay, run_at) -> datetime:
    if run_at is not None:
        raise ValidationError({"delay": ["Give run_at or delay, not both."]})
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < MAX_DELAY.total_seconds():
        raise ValidationError({"delay": ["Must be a timedelta or a number of seconds, from 0 up to ten years."]})
    return timezone.now() + timedelta(seconds=seconds)


def _check_tenant(tenant: Tenant | None) -> None:
    if tenant is None:
        return
    if not isinstance(tenant, Tenant) or tenant.pk is None:
        raise ValidationError({"tenant": ["Must be a saved Tenant or None for a system job."]})
    if not tenant.active:
        raise ValidationError({"tenant": [f"Tenant {tenant.slug!r} is inactive."]})


def _check_key(key: str | None) -> None:
    if key is None:
        return
    if not isinstance(key, str) or not key.strip():
        raise ValidationError({"idempotency_key": ["Must be a non-empty string."]})
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationError({"idempotency_key": [f"Is {len(key)} characters; the limit is {IDEMPOTENCY_KEY_MAX}."]})


def _insert_or_existing(job: Job) -> Job | None:
    # The partial unique index decides; a savepoint keeps the caller's transaction usable.
    for _ in range(3):
        try:
            with transaction.atomic():
                job.save(force_insert=True)
            return None
        except IntegrityError:
            existing = (Job.objects.unfinished()
                        .filter(tenant=job.tenant, idempotency_key=job.idempotency_key).first())
            if existing is not None:
                return existing
    raise ValidationError({"idempotency_key": ["Conflicts with a job that keeps changing state; try again."]})


def _check_priority(priority) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValidationError({"priority": [f"Must be a whole number from 1 to 10 (10 goes first; "
                                            f"{DEFAULT_PRIORITY} is the default), not {priority!r}."]})


def _push_after_commit(jobs: list[Job]) -> None:
    handovers = [
        transport.Handover(job_id=str(job.pk), queue=job.queue, kind=job.kind,
                           tenant=job.tenant.slug if job.tenant else "system", timeout=job.timeout, fresh=True,
                           priority=job.priority)
        for job in jobs
    ]
    if settings.JOBS_PUSH_IN_BACKGROUND:
        pusher.submit(handovers)  # the caller goes on once its commit is durable
    else:
        relay_module.hand_over(handovers)


def job_cancel(*, job: Job, user=None) -> Job:
    """Cancel a job that has not started (pending, scheduled, queued or retrying)."""
    if not jobs_cancel(job_ids=[job.pk], user=user):
        job.refresh_from_db()
        raise JobStateError(f"Job {job.short_id} is {job.status}; only waiting jobs can be cancelled.")
    job.refresh_from_db()
    return job


def job_stop(*, job: Job, user=None) -> Job:
    """Stop a running job. The attempt is recorded as `stopped` and never retried automatically."""
    stopping = jobs_stop(job_ids=[job.pk], user=user)
    job.refresh_from_db()
    if not stopping and job.status != Status.RUNNING:
        raise JobStateError(f"Job {job.short_id} is {job.status}; only running jobs can be stopped.")
    return job


def job_retry(*, job: Job, user=None) -> Job:
    """Start a new attempt of a failed or cancelled job, with the kind's full retry allowance again."""
    if not jobs_retry(job_ids=[job.pk], user=user):
        job.refresh_from_db()
        if job.status in RETRYABLE:
            raise JobStateError(
                f"Job {job.short_id} cannot be retried: another unfinished job holds its idempotency key."
            )
        raise JobStateError(f"Job {job.short_id} is {job.status}; only failed or cancelled jobs can be retried.")
    job.refresh_from_db()
    return job


# The set-based forms: each takes ids, moves those in a state the action applies to (row locks, so
# a worker's claim and a staff action never both win) and returns the ids it moved.

RETRYABLE = (Status.FAILED, Status.CANCELLED)


def jobs_cancel(*, job_ids: Collection[UUID], user=None) -> list[UUID]:
    """Cancel the waiting jobs among `job_ids`; they are taken out of RQ after commit."""
    now = timezone.now()
    with transaction.atomic():
        rows = _lock(job_ids, WAITING, "id", "queue")
        ids = [job_id for job_id, _ in rows]
        Job.objects.filter(pk__in=ids).transition(Status.CANCELLED, finished_at=now, last_error=_by("Cancelled", user))
    transaction.on_commit(partial(_cancelled_after_commit, rows), robust=True)
    return ids


def _cancelled_after_commit(rows: list[tuple[UUID, str]]) -> None:
    _forget_in_rq(rows)  # a worker that still receives one finds nothing to claim
    tenants = set()
    for job in Job.objects.filter(pk__in=[job_id for job_id, _ in rows]).select_related("tenant"):
        eventlog.job_changed(job)
        signals.job_cancelled.send_robust(sender=Job, job=job, attempt=None)
        tenants.add(job.tenant_id)
    for tenant_id in sorted(t for t in tenants if t is not None):
        relay_module.slot_freed(tenant_id)  # a cancelled queued job gave its slot back


def jobs_stop(*, job_ids: Collection[UUID], user=None) -> list[UUID]:
    """Ask the running jobs among `job_ids` to stop; asking twice is harmless."""
    with transaction.atomic():
        ids = [row[0] for row in _lock(job_ids, (Status.RUNNING,), "id")]
        Job.objects.filter(pk__in=ids, stop_requested_at__isnull=True).update(
            stop_requested_at=timezone.now(), last_error=_by("Stop requested", user)
        )
    transaction.on_commit(partial(_stop_in_rq, [str(job_id) for job_id in ids]), robust=True)
    return ids


def _stop_in_rq(job_ids: list[str]) -> None:
    for job_id in job_ids:
        try:
            transport.stop(job_id)
        except transport.TransportError:
            logger.warning("Job %s: Redis unreachable; the stop applies at the handler's next progress report",
                           job_id)
            return


def jobs_retry(*, job_ids: Collection[UUID], user=None) -> list[UUID]:
    """Reopen the failed and cancelled jobs among `job_ids`, each with its kind's retry allowance again.

    A job whose idempotency key another unfinished job now holds is left as it is.
    """
    moved: list[UUID] = []
    triggered_by = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        rows = _lock(job_ids, RETRYABLE, *eventlog.ROW_FIELDS)
        by_kind: dict[str, list[UUID]] = {}
        for job_id, _, kind, *_ in rows:
            by_kind.setdefault(kind, []).append(job_id)
        for kind, ids in by_kind.items():
            moved.extend(_reopen_all(ids, triggered_by, _attempts_allowed(kind)))
    reopened = set(moved)
    transaction.on_commit(partial(eventlog.jobs_changed, [row for row in rows if row[0] in reopened],
                                  status=Status.PENDING, trigger=Trigger.MANUAL), robust=True)
    transaction.on_commit(partial(relay_module.relay, job_ids=moved, eager=True), robust=True)
    return moved


RUN_NOW_FROM = (Status.SCHEDULED, Status.RETRYING)


def jobs_run_now(*, job_ids: Collection[UUID], user=None) -> list[UUID]:
    """Make the scheduled and retrying jobs among `job_ids` due now; the relay hands them over at once,
    within their tenant's limits. A retrying job's next attempt is recorded as a manual one. A chain's step
    waiting for the one before has no time to bring forward and is left alone."""
    triggered_by = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        rows = _lock_rows(Job.objects.filter(pk__in=list(job_ids), status__in=RUN_NOW_FROM, run_at__isnull=False),
                          "status", *eventlog.ROW_FIELDS)
        retrying = [row[1] for row in rows if row[0] == Status.RETRYING]
        scheduled = [row[1] for row in rows if row[0] == Status.SCHEDULED]
        Job.objects.filter(pk__in=retrying).transition(Status.PENDING, run_at=None, next_trigger=Trigger.MANUAL,
                                                       next_triggered_by=triggered_by)
        Job.objects.filter(pk__in=scheduled).transition(Status.PENDING, run_at=None, next_triggered_by=triggered_by)
    moved = retrying + scheduled
    transaction.on_commit(partial(eventlog.jobs_changed, [row[1:] for row in rows], status=Status.PENDING,
                                  reason="run now"), robust=True)
    transaction.on_commit(partial(relay_module.relay, job_ids=moved, eager=True), robust=True)
    return moved


def _attempts_allowed(kind: str) -> int:
    try:
        return get_kind(kind).max_attempts
    except ValidationError:
        return 1


def _reopen_all(ids: list[UUID], user, extra_attempts: int) -> list[UUID]:
    try:
        with transaction.atomic():
            _reopen(ids, user, extra_attempts)
        return ids
    except IntegrityError:
        pass
    # Another unfinished job holds one of these idempotency keys: reopen the others one by one.
    reopened = []
    for job_id in ids:
        try:
            with transaction.atomic():
                _reopen([job_id], user, extra_attempts)
            reopened.append(job_id)
        except IntegrityError:
            continue
    return reopened


def _reopen(ids: list[UUID], user, extra_attempts: int) -> int:
    return Job.objects.filter(pk__in=ids, status__in=RETRYABLE).transition(
        Status.PENDING,
        max_attempts=F("attempts") + extra_attempts,
        next_trigger=Trigger.MANUAL,
        next_triggered_by=user,
        finished_at=None,
        run_at=None,
        stop_requested_at=None,
        progress=0,
        progress_message="",
    )


def jobs_delete(*, job_ids: Collection[UUID], finished_before: datetime | None = None) -> list[UUID]:
    """Delete the records (with their attempts) of the finished jobs among `job_ids`.

    With `finished_before` (cleaning by age), pinned jobs are kept; a hand-picked delete removes them.
    """
    with transaction.atomic():
        rows = Job.objects.filter(pk__in=list(job_ids), status__in=TERMINAL)
        if finished_before is not None:
            rows = rows.filter(finished_at__lt=finished_before, pinned=False)
        locked = _lock_rows(rows, "id", "queue")
        ids = [job_id for job_id, _ in locked]
        Attempt.objects.filter(job_id__in=ids).delete()
        Job.objects.filter(pk__in=ids).delete()
    # RQ's copy of a job that failed for good goes with its record.
    transaction.on_commit(partial(_forget_in_rq, locked), robust=True)
    return ids


def _forget_in_rq(rows: list[tuple[UUID, str]]) -> None:
    try:
        transport.remove((str(job_id), queue) for job_id, queue in rows)
    except transport.TransportError:
        pass  # it expires by itself (JOBS_RQ_FAILURE_TTL)


def jobs_pin(*, job_ids: Collection[UUID], pinned: bool = True) -> list[UUID]:
    """Pin (keep past retention) or unpin the jobs among `job_ids`; returns the ids that changed."""
    with transaction.atomic():
        ids = [row[0] for row in _lock_rows(Job.objects.filter(pk__in=list(job_ids)).exclude(pinned=pinned), "id")]
        Job.objects.filter(pk__in=ids).update(pinned=pinned)
    return ids


def _lock(job_ids: Collection[UUID], statuses: Iterable[str], *fields: str) -> list[tuple]:
    return _lock_rows(Job.objects.filter(pk__in=list(job_ids), status__in=list(statuses)), *fields)


def _lock_rows(rows: QuerySet, *fields: str) -> list[tuple]:
    return list(rows.select_for_update(of=("self",)).order_by("pk").values_list(*fields))


def _by(action: str, user) -> str:
    name = getattr(user, "get_username", lambda: "")()
    return f"{action} by {name}" if name else action
