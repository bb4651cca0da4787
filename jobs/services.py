"""Writes: enqueue, cancel, stop, retry. Views, admin actions, commands and the API call these."""
from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import relay as relay_module
from jobs import signals, statements, transport
from jobs.models import WAITING, Job, Source, Status, Trigger, new_job_id
from jobs.registry import Kind, get_kind
from tenants.models import Tenant

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 200


class JobStateError(ValidationError):
    """The job is not in a state that allows this action."""


def job_enqueue(
    *,
    kind: str,
    tenant: Tenant | None,
    payload: Mapping[str, Any],
    user=None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    source: str = Source.VIEW,
) -> Job:
    """Store a job in the caller's transaction and hand it to RQ after commit.

    Bad input raises a ValidationError naming the field; nothing is stored then. With an
    idempotency key, an unfinished job of the same tenant and key is returned instead of a new one.
    """
    spec = get_kind(kind)
    job = _build_job(spec, tenant=tenant, payload=payload, user=user, run_at=run_at,
                     idempotency_key=idempotency_key, source=source)
    if idempotency_key is None:
        _insert([job])
    else:
        existing = _insert_or_existing(job)
        if existing is not None:
            return existing
    if job.status == Status.QUEUED:
        transaction.on_commit(partial(_push_after_commit, [job]), robust=True)
    return job


def job_enqueue_many(
    *,
    kind: str,
    tenant: Tenant | None,
    payloads: Iterable[Mapping[str, Any]],
    user=None,
    source: str = Source.VIEW,
) -> list[Job]:
    """Enqueue many jobs of one kind with one INSERT and one Redis round trip.

    Every payload is validated first; one bad payload rejects the whole batch, with errors named
    `payloads[i].field`, and nothing is stored.
    """
    spec = get_kind(kind)
    _check_tenant(tenant)
    stored = spec.validate_many(list(payloads))
    now = timezone.now()
    status = Status.QUEUED if relay_module.admit_new(len(stored), spec.queue) else Status.PENDING
    jobs = _new_jobs(spec, tenant=tenant, payloads=stored, user=user, source=source, status=status, now=now)
    _insert(jobs)
    if status == Status.QUEUED:
        transaction.on_commit(partial(_push_after_commit, jobs), robust=True)
    return jobs


_ATTNAMES = [f.attname for f in Job._meta.concrete_fields]
_ID_INDEX, _PAYLOAD_INDEX = _ATTNAMES.index("id"), _ATTNAMES.index("payload")


def _new_jobs(spec: Kind, *, tenant, payloads: list[dict[str, Any]], user, source, status, now) -> list[Job]:
    """Jobs alike but for id and payload, built the fast way (positional values, like fetched rows)."""
    if not payloads:
        return []
    first = _new_job(spec, tenant=tenant, payload=payloads[0], user=user, source=source, status=status, now=now)
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


def _insert(jobs: list[Job]) -> None:
    if statements.supported():
        statements.insert_jobs(jobs)
    else:
        Job.objects.bulk_create(jobs, batch_size=1000)


def _build_job(spec: Kind, *, tenant, payload, user, source, run_at=None, idempotency_key=None) -> Job:
    _check_tenant(tenant)
    stored = spec.validate(payload)
    _check_key(idempotency_key)
    now = timezone.now()
    if run_at is not None and timezone.is_naive(run_at):
        raise ValidationError({"run_at": ["Must be timezone-aware."]})
    scheduled = run_at is not None and run_at > now
    # An admitted job is stored queued and pushed right after commit (one write instead of two). If
    # the process dies between commit and push, the reconciler finds a queued job Redis never got.
    if scheduled:
        status = Status.SCHEDULED
    elif relay_module.admit_new(1, spec.queue):
        status = Status.QUEUED
    else:
        status = Status.PENDING
    return _new_job(spec, tenant=tenant, payload=stored, user=user, source=source, status=status, now=now,
                    run_at=run_at if scheduled else None, idempotency_key=idempotency_key)


def _new_job(spec: Kind, *, tenant, payload, user, source, status, now, run_at=None, idempotency_key=None) -> Job:
    values = dict(_defaults())
    values.update(
        id=new_job_id(),
        tenant_id=tenant.pk if tenant is not None else None,
        kind=spec.name,
        queue=spec.queue,
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
    )
    # Positional construction, as Django does for fetched rows: a fraction of the keyword path's cost.
    job = Job(*values.values())
    if tenant is not None:
        Job.tenant.field.set_cached_value(job, tenant)
    return job


@functools.cache
def _defaults() -> dict[str, Any]:
    return {field.attname: field.get_default() for field in Job._meta.concrete_fields}


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


def _push_after_commit(jobs: list[Job]) -> None:
    handovers = [
        transport.Handover(job_id=str(job.pk), queue=job.queue, kind=job.kind,
                           tenant=job.tenant.slug if job.tenant else "system", timeout=job.timeout, fresh=True)
        for job in jobs
    ]
    relay_module.hand_over(handovers)


def job_cancel(*, job: Job, user=None) -> Job:
    """Cancel a job that has not started (pending, scheduled, queued or retrying)."""
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, status__in=WAITING).transition(
        Status.CANCELLED, finished_at=now, last_error=_by("Cancelled", user)
    )
    if not moved:
        job.refresh_from_db()
        raise JobStateError(f"Job {job.short_id} is {job.status}; only waiting jobs can be cancelled.")
    transaction.on_commit(partial(_remove_from_rq, str(job.pk), job.queue), robust=True)
    job.refresh_from_db()
    signals.job_cancelled.send(sender=Job, job=job, attempt=None)
    return job


def _remove_from_rq(job_id: str, queue: str) -> None:
    try:
        transport.remove([(job_id, queue)])
    except transport.TransportError:
        pass  # A worker that still receives it finds nothing to claim.


def job_stop(*, job: Job, user=None) -> Job:
    """Stop a running job. The attempt is recorded as `stopped` and never retried automatically."""
    moved = Job.objects.filter(pk=job.pk, status=Status.RUNNING, stop_requested_at__isnull=True).update(
        stop_requested_at=timezone.now(), last_error=_by("Stop requested", user)
    )
    job.refresh_from_db()
    if not moved and job.status != Status.RUNNING:
        raise JobStateError(f"Job {job.short_id} is {job.status}; only running jobs can be stopped.")
    transaction.on_commit(partial(_stop_in_rq, str(job.pk)), robust=True)
    return job


def _stop_in_rq(job_id: str) -> None:
    try:
        transport.stop(job_id)
    except transport.TransportError:
        logger.warning("Job %s: Redis unreachable; the stop applies at the handler's next progress report", job_id)


def job_retry(*, job: Job, user=None) -> Job:
    """Start a new attempt of a failed or cancelled job, with the kind's full retry allowance again."""
    try:
        extra = get_kind(job.kind).max_attempts
    except ValidationError:
        extra = 1
    try:
        with transaction.atomic():
            moved = _reopen(job, user, extra)
    except IntegrityError:
        raise JobStateError(
            f"Job {job.short_id} cannot be retried: another unfinished job holds its idempotency key."
        ) from None
    if not moved:
        job.refresh_from_db()
        raise JobStateError(f"Job {job.short_id} is {job.status}; only failed or cancelled jobs can be retried.")
    transaction.on_commit(partial(relay_module.relay, job_ids=[job.pk], eager=True), robust=True)
    job.refresh_from_db()
    return job


def _reopen(job: Job, user, extra_attempts: int) -> int:
    return Job.objects.filter(pk=job.pk, status__in=(Status.FAILED, Status.CANCELLED)).transition(
        Status.PENDING,
        max_attempts=job.attempts + extra_attempts,
        next_trigger=Trigger.MANUAL,
        next_triggered_by=user if getattr(user, "is_authenticated", False) else None,
        finished_at=None,
        run_at=None,
        stop_requested_at=None,
        progress=0,
        progress_message="",
    )


def _by(action: str, user) -> str:
    name = getattr(user, "get_username", lambda: "")()
    return f"{action} by {name}" if name else action

