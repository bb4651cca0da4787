"""Batches and chains: jobs started together, followed together.

A batch's members run side by side; a chain's run one after the other: step n+1 waits `scheduled`
without a time (never due) until step n succeeds, and a step that fails or is cancelled stops the
chain (the later steps are cancelled, saying why). When every member has finished, the batch is
marked finished by one conditional UPDATE (so two members finishing at once fire it once) and its
callback kind, if any, is enqueued with the counts: `batch`, `succeeded`, `failed`, `cancelled`.

Members settle through the engine's signals; a reconciler pass repairs what a worker killed between
its commit and the signal left undone, so batches survive worker kills and Redis loss like single jobs.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from jobs import relay, services, signals
from jobs.models import TERMINAL, UNFINISHED, WAITING, AuditAction, Batch, Job, Source, Status
from jobs.registry import get_kind
from jobs.staff import audit_event_record
from tenants.models import Tenant

logger = logging.getLogger(__name__)

COUNT_FIELDS = {"batch": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
CHAIN_STOPPED = "Chain stopped: step {position} ({kind}) {status}."


def waiting_for(position: int) -> str:
    return f"Waiting for step {position - 1} of the chain to succeed."


def batch_enqueue(*, kind: str, tenant: Tenant | None, payloads: Sequence[Mapping[str, Any]], name: str,
                  callback_kind: str = "", callback_payload: Mapping[str, Any] | None = None, user=None,
                  source: str = Source.VIEW) -> Batch:
    """Enqueue `payloads` as one batch of `kind` jobs (one INSERT, one hand-over), with an optional callback."""
    payloads = list(payloads)
    errors = _problems(name, payloads, "payloads", callback_kind, callback_payload)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        batch = Batch.objects.create(tenant=tenant, name=name, total=len(payloads), callback_kind=callback_kind,
                                     callback_payload=dict(callback_payload or {}), created_by=_user(user))
        services.job_enqueue_many(kind=kind, tenant=tenant, payloads=payloads, user=user, source=source, batch=batch)
    return batch


def chain_enqueue(*, tenant: Tenant | None, steps: Sequence[tuple[str, Mapping[str, Any]]], name: str,
                  callback_kind: str = "", callback_payload: Mapping[str, Any] | None = None, user=None,
                  source: str = Source.VIEW) -> Batch:
    """Enqueue `steps` ((kind, payload) pairs) as a chain: each starts when the previous one succeeded."""
    steps = list(steps)
    errors = _problems(name, steps, "steps", callback_kind, callback_payload)
    for index, (kind, payload) in enumerate(steps):
        try:
            get_kind(kind).validate(payload)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors[f"steps[{index}].{field}"] = messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        batch = Batch.objects.create(tenant=tenant, name=name, sequential=True, total=len(steps),
                                     callback_kind=callback_kind, callback_payload=dict(callback_payload or {}),
                                     created_by=_user(user))
        first = services.job_enqueue(kind=steps[0][0], tenant=tenant, payload=steps[0][1], user=user, source=source,
                                     batch=batch, batch_position=1)
        later = [services.job_build_waiting(kind=kind, tenant=tenant, payload=payload, user=user, source=source,
                                            batch=batch, batch_position=position, message=waiting_for(position))
                 for position, (kind, payload) in enumerate(steps[1:], start=2)]
        services.jobs_insert(later)
    batch.first_job = first
    return batch


def _problems(name: str, members: list, field: str, callback_kind: str, callback_payload) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Give the batch a name staff will recognise."]
    if not members:
        errors[field] = ["Needs at least one job."]
    if callback_kind:
        try:
            get_kind(callback_kind).validate({**(callback_payload or {}), **COUNT_FIELDS})
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors[f"callback.{key}"] = messages
    return errors


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None


# --- members settling ----------------------------------------------------------------------------------


def member_settled(job: Job) -> None:
    """A member reached a final state: start the chain's next step or stop the chain, then finish the
    batch if that was the last one."""
    if job.batch_id is None:
        return
    sequential = Batch.objects.filter(pk=job.batch_id).values_list("sequential", flat=True).first()
    if sequential is None:
        return
    if sequential and job.batch_position is not None:
        if job.status == Status.SUCCEEDED:
            _start_step(job.batch_id, job.batch_position + 1)
        else:
            _stop_chain(job.batch_id, job.batch_position, job.kind, job.status)
    batch_finish_if_done(batch_id=job.batch_id)


def _start_step(batch_id: int, position: int) -> None:
    ids = list(Job.objects.filter(batch_id=batch_id, batch_position=position, status=Status.SCHEDULED,
                                  run_at__isnull=True).values_list("pk", flat=True))
    if ids:
        Job.objects.filter(pk__in=ids, run_at__isnull=True).update(run_at=timezone.now(), progress_message="")
        relay.relay(job_ids=ids, eager=True)


def _stop_chain(batch_id: int, position: int, kind: str, status: str) -> int:
    reason = CHAIN_STOPPED.format(position=position, kind=kind, status=status)
    return Job.objects.filter(batch_id=batch_id, batch_position__gt=position, status__in=WAITING).transition_logged(
        Status.CANCELLED, reason="chain stopped", finished_at=timezone.now(), last_error=reason, progress_message="")


def batch_counts(*, batch: Batch) -> dict[str, int]:
    """Members by status (every status present, zeros included)."""
    counts = dict(Job.objects.filter(batch=batch).values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in Status.values}


def batch_finish_if_done(*, batch_id: int) -> Job | None:
    """Mark the batch finished once no member is unfinished, and enqueue its callback: exactly once."""
    unfinished = Job.objects.filter(batch_id=OuterRef("pk"), status__in=UNFINISHED)
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch_id, finished_at__isnull=True).exclude(Exists(unfinished)).update(
                finished_at=timezone.now()):
            return None
        batch = Batch.objects.select_related("tenant").get(pk=batch_id)
        if not batch.callback_kind:
            return None
        counts = batch_counts(batch=batch)
        payload = {**batch.callback_payload, "batch": batch.pk, "succeeded": counts[Status.SUCCEEDED],
                   "failed": counts[Status.FAILED], "cancelled": counts[Status.CANCELLED]}
        try:
            with transaction.atomic():
                job = services.job_enqueue(kind=batch.callback_kind, tenant=batch.tenant, payload=payload,
                                           source=Source.JOB)
        except ValidationError as exc:
            logger.error("Batch %s finished but its callback %s was refused: %s", batch.pk, batch.callback_kind,
                         exc.messages)
            return None
        Batch.objects.filter(pk=batch.pk).update(callback_job=job)
    return job


def batches_repair(limit: int = 200) -> int:
    """What the signals left undone (a worker killed between its commit and them): start due chain
    steps, stop chains after a failed step, finish batches whose members all finished."""
    repaired = 0
    for batch in Batch.objects.filter(finished_at__isnull=True).order_by("pk")[:limit]:
        if batch.sequential:
            members = list(Job.objects.filter(batch=batch).order_by("batch_position")
                           .values_list("batch_position", "status", "kind", "run_at"))
            for position, status, kind, run_at in members:
                if status == Status.SUCCEEDED:
                    continue
                if status in (Status.FAILED, Status.CANCELLED):
                    repaired += _stop_chain(batch.pk, position, kind, status)
                elif status == Status.SCHEDULED and run_at is None and position > 1:
                    _start_step(batch.pk, position)
                    repaired += 1
                break
        if batch_finish_if_done(batch_id=batch.pk) is not None:
            repaired += 1
    return repaired


def batch_retry_failed(*, batch: Batch, user) -> list:
    """Retry the failed members (of a chain: its failed step, and the steps it stopped wait again); the
    batch reopens, and its callback fires again when the members have finished."""
    with transaction.atomic():
        failed = list(Job.objects.filter(batch=batch, status=Status.FAILED).order_by("batch_position", "pk")
                      .values_list("pk", "batch_position"))
        if batch.sequential and failed:
            failed = failed[:1]
            position = failed[0][1]
            stopped = Job.objects.filter(batch=batch, batch_position__gt=position, status=Status.CANCELLED,
                                         last_error__startswith="Chain stopped")
            for job_id, later in stopped.values_list("pk", "batch_position"):
                Job.objects.filter(pk=job_id).transition_logged(Status.SCHEDULED, run_at=None, finished_at=None,
                                                         last_error="", progress_message=waiting_for(later))
        retried = services.jobs_retry(job_ids=[pk for pk, _ in failed], user=user)
        if retried:
            Batch.objects.filter(pk=batch.pk).update(finished_at=None)
        audit_event_record(user=user, action=AuditAction.BATCH_RETRY, tenant=batch.tenant,
                           target=f"{'chain' if batch.sequential else 'batch'} {batch.name}", requested=len(failed),
                           done=len(retried), outcome=f"{len(retried)} failed member(s) retried.")
    return retried


def _on_settled(sender, job: Job, **kwargs) -> None:
    if job.batch_id is not None and job.status in TERMINAL:
        member_settled(job)


for _signal in (signals.job_succeeded, signals.job_failed, signals.job_cancelled):
    _signal.connect(_on_settled, dispatch_uid=f"batches-{_signal!r}")
