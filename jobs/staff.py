"""Staff actions on jobs and queues, each checked against the actor's role and recorded as an AuditEvent.

A selection is any queryset of jobs (a hand-picked list or a whole filtered changelist). It is worked
through in chunks of `CHUNK` rows, newest first, one short transaction per chunk, so no request or
transaction ever holds thousands of rows. Selections over `settings.JOBS_ADMIN_BULK_THRESHOLD` jobs run
as a tracked background job (`jobs.staff_action`) with its own progress.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import relay, services, transport
from jobs.models import (
    TERMINAL, WAITING, AuditAction, AuditEvent, AuditEventJob, AuditState, Job, QueueState, Source, Status,
)
from jobs.registry import get_kind, public_kind_names
from tenants.models import Role, Tenant
from tenants.selectors import tenant_ids_with_role, user_has_role

CHUNK = 500
STAFF_ACTION_KIND = "jobs.staff_action"

# What the actor acts through, when not in person: the API sets it to the token for the length of a
# request, so every audit event that request records names it ("alice (API token tj_abc)").
acting_through: ContextVar[str] = ContextVar("acting_through", default="")


@dataclass(frozen=True)
class JobAction:
    name: str
    role: str
    applies_to: tuple[str, ...]
    apply: Callable[..., list[UUID]]  # (job_ids, user, finished_before) -> ids acted on

    @property
    def label(self) -> str:
        return AuditAction(self.name).label


JOB_ACTIONS: dict[str, JobAction] = {
    action.name: action for action in [
        JobAction(AuditAction.RETRY, Role.OPERATOR, services.RETRYABLE,
                  lambda ids, user, before: services.jobs_retry(job_ids=ids, user=user)),
        JobAction(AuditAction.RUN_NOW, Role.OPERATOR, services.RUN_NOW_FROM,
                  lambda ids, user, before: services.jobs_run_now(job_ids=ids, user=user)),
        JobAction(AuditAction.CANCEL, Role.OPERATOR, WAITING,
                  lambda ids, user, before: services.jobs_cancel(job_ids=ids, user=user)),
        JobAction(AuditAction.STOP, Role.OPERATOR, (Status.RUNNING,),
                  lambda ids, user, before: services.jobs_stop(job_ids=ids, user=user)),
        JobAction(AuditAction.DELETE, Role.ADMIN, TERMINAL,
                  lambda ids, user, before: services.jobs_delete(job_ids=ids)),
        JobAction(AuditAction.CLEAN, Role.ADMIN, TERMINAL,
                  lambda ids, user, before: services.jobs_delete(job_ids=ids, finished_before=before)),
        JobAction(AuditAction.PIN, Role.ADMIN, tuple(Status),
                  lambda ids, user, before: services.jobs_pin(job_ids=ids, pinned=True)),
        JobAction(AuditAction.UNPIN, Role.ADMIN, tuple(Status),
                  lambda ids, user, before: services.jobs_pin(job_ids=ids, pinned=False)),
    ]
}


def audit_event_record(*, user, action: str, tenant: Tenant | None = None, target: str = "", reason: str = "",
                       state: str = AuditState.DONE, outcome: str = "", **fields) -> AuditEvent:
    """Store one staff action as it happened, naming what the actor acted through (`acting_through`)."""
    through = acting_through.get()
    name = f"{user.get_username()} ({through})" if through else user.get_username()
    return AuditEvent.objects.create(
        actor=user, actor_name=name[:150], action=action, tenant=tenant, target=target[:255],
        reason=reason, state=state, outcome=outcome,
        finished_at=None if state == AuditState.RUNNING else timezone.now(), **fields,
    )


def staff_jobs_act(*, action: str, user, jobs: QuerySet[Job], reason: str = "", selection: str = "",
                   days: int | None = None, event: AuditEvent | None = None,
                   progress: Callable[[int, int], None] | None = None) -> AuditEvent:
    """Apply a job action to a selection now, as far as the actor's role allows, and record it.

    Jobs in tenants where the actor's role is too low are counted as refused; jobs not in a state the
    action applies to are counted as skipped. `days` is the age (since finishing) for `clean`.
    """
    spec = JOB_ACTIONS[action]
    named_here = event is None  # a caller's own event (the API's) already says what it acted on
    if event is None:
        event = audit_event_record(user=user, action=action, reason=reason, selection=selection,
                                   state=AuditState.RUNNING, target=_target(spec, days))
    before = timezone.now() - timedelta(days=days) if action == AuditAction.CLEAN else None
    permitted = _permitted_tenants(user, spec.role)
    # Jobs touched by an earlier run of the same event (a retried background action) are not redone.
    remaining = jobs.filter(created_at__lte=event.created_at).exclude(pk__in=event.touched.values("job_id"))
    total = event.requested or 0
    tenants_seen: set[int | None] = set()
    seen = 0
    last: UUID | None = None
    first: Job | None = None
    while True:
        chunk = remaining.order_by("-pk")
        if last is not None:
            chunk = chunk.filter(pk__lt=last)
        rows = list(chunk.values_list("id", "tenant_id", "kind")[:CHUNK])
        if not rows:
            break
        last = rows[-1][0]
        allowed = [job_id for job_id, tenant_id, _ in rows if permitted is None or tenant_id in permitted]
        tenants_seen.update(tenant_id for _, tenant_id, _ in rows)
        first = first or Job(id=rows[0][0], kind=rows[0][2])  # named by a one-job action (before a delete)
        acted = spec.apply(allowed, user, before)
        AuditEventJob.objects.bulk_create([AuditEventJob(event=event, job_id=job_id) for job_id in acted],
                                          ignore_conflicts=True)
        event.done += len(acted)
        event.skipped += len(allowed) - len(acted)
        event.refused += len(rows) - len(allowed)
        seen += len(rows)
        if progress is not None:
            progress(seen, max(total, seen))
    # One job the actor may act on is named; one they may not is never described to them.
    only = first if seen == 1 and total <= 1 and not event.refused else None
    return _settle(event, spec, tenants_seen, requested=max(total, seen), only=only, name_target=named_here)


def staff_jobs_act_now_or_later(*, action: str, user, jobs: QuerySet[Job], selection: str, reason: str = "",
                                tenant: Tenant | None = None, days: int | None = None) -> AuditEvent:
    """An action on a filter (`selection`, a changelist query string, and `jobs`, its rows): now when
    small, as a background job past JOBS_ADMIN_BULK_THRESHOLD. `days` is the age for `clean`."""
    threshold = settings.JOBS_ADMIN_BULK_THRESHOLD
    if jobs[: threshold + 1].count() > threshold:
        return staff_jobs_act_later(action=action, user=user, selection=selection, requested=jobs.count(),
                                    reason=reason, tenant=tenant, days=days)
    return staff_jobs_act(action=action, user=user, jobs=jobs, reason=reason, selection=selection, days=days)


def staff_jobs_act_later(*, action: str, user, selection: str, requested: int, reason: str = "",
                         days: int | None = None, tenant: Tenant | None = None) -> AuditEvent:
    """Record a large action now and run it as a tracked background job that reports its progress.

    `selection` is the admin changelist's query string; the job re-applies it as the actor, limited
    to the jobs that existed when the action was confirmed.
    """
    spec = JOB_ACTIONS[action]
    with transaction.atomic():
        event = audit_event_record(user=user, action=action, reason=reason, selection=selection,
                                   requested=requested, tenant=tenant, state=AuditState.RUNNING,
                                   target=_target(spec, days))
        event.background_job = services.job_enqueue(
            kind=STAFF_ACTION_KIND, tenant=tenant, payload={"event": event.pk, "days": days}, user=user,
            source=Source.ADMIN,
        )
        event.save(update_fields=["background_job"])
    return event


def staff_rq_remove(*, user, queue: str, rq_ids: list[str], reason: str = "") -> AuditEvent:
    """Delete RQ jobs that have no record (written into Redis by someone else) from a queue's list,
    registries and job hashes. Superusers only: they are nobody's tenant's."""
    if not (user.is_active and user.is_superuser):
        raise PermissionDenied("Only superusers remove RQ jobs that have no record.")
    _check_queue(queue)
    transport.remove((rq_id, queue) for rq_id in rq_ids)
    shown = ", ".join(rq_ids[:5]) + (f" and {len(rq_ids) - 5} more" if len(rq_ids) > 5 else "")
    return audit_event_record(user=user, action=AuditAction.RQ_REMOVE, target=f"queue {queue}", reason=reason,
                              requested=len(rq_ids), done=len(rq_ids),
                              outcome=f"Removed {len(rq_ids)} RQ job(s) without a record from Redis: {shown}.")


def outcome_level(event: AuditEvent) -> int:
    """How a page should show the event's outcome (django.contrib.messages level)."""
    if event.state == AuditState.DONE:
        return messages.SUCCESS if event.done else messages.WARNING
    return messages.WARNING if event.done else messages.ERROR


def staff_queue_pause(*, name: str, user, reason: str = "") -> AuditEvent:
    """Pause a queue: its waiting jobs stay in the database (queued ones are taken back), running ones finish.
    Queues serve every tenant: superusers only, checked now (a refusal is recorded and raises PermissionDenied)."""
    _check_superuser(user, AuditAction.PAUSE_QUEUE, name, reason)
    _check_queue(name)
    QueueState.objects.update_or_create(name=name, defaults={"paused_at": timezone.now(), "paused_by": user})
    relay.forget_paused_cache()
    held = relay.hold_paused()
    return audit_event_record(user=user, action=AuditAction.PAUSE_QUEUE, target=f"queue {name}", reason=reason,
                              outcome=f"{held} queued job(s) taken back from Redis.", done=held, requested=held)


def staff_queue_resume(*, name: str, user, reason: str = "") -> AuditEvent:
    """Resume a paused queue; its waiting jobs are handed to workers right away. Superusers only."""
    _check_superuser(user, AuditAction.RESUME_QUEUE, name, reason)
    _check_queue(name)
    QueueState.objects.filter(name=name).update(paused_at=None, paused_by=None)
    relay.forget_paused_cache()
    transaction.on_commit(relay.relay, robust=True)
    return audit_event_record(user=user, action=AuditAction.RESUME_QUEUE, target=f"queue {name}", reason=reason)


def staff_job_start(*, kind: str, tenant: Tenant | None, payload: dict, user, reason: str = "",
                    clone_of: Job | None = None) -> tuple[AuditEvent, Job]:
    """Start a job from the admin in the actor's name, audited, with the actor's role checked now: tenant
    staff must be an operator (or admin) of `tenant` and start a public kind; superusers may start any
    kind, for any tenant or none (a system job). A clone of `clone_of` whose kind, tenant and payload are
    unchanged is a second run of the same work: any kind an operator could retry.

    Raises PermissionDenied, or ValidationError naming the field (`kind`, `payload.<field>`); then nothing
    is stored."""
    spec = get_kind(kind)
    if not user.is_superuser:
        if not (user.is_active and tenant is not None and user_has_role(user=user, role=Role.OPERATOR, tenant=tenant)):
            raise PermissionDenied(f"Starting jobs for {tenant or 'the system'} needs the operator role there.")
        same_work = clone_of is not None and (clone_of.kind, clone_of.tenant_id, clone_of.payload) == (
            kind, tenant.pk, spec.validate(payload))
        if spec.system or not (spec.public or same_work):
            raise PermissionDenied(f"{kind} is started by the application only; staff may start public kinds "
                                   f"({', '.join(public_kind_names()) or 'none'}) or clone a job as it was.")
    with transaction.atomic():
        job = services.job_enqueue(kind=kind, tenant=tenant, payload=payload, user=user, source=Source.ADMIN)
        action = AuditAction.CLONE if clone_of is not None else AuditAction.START
        outcome = f"Started job {job.short_id}" + (f", a copy of job {clone_of.short_id}." if clone_of else ".")
        event = audit_event_record(user=user, action=action, tenant=tenant, reason=reason, outcome=outcome,
                                   target=f"job {job.short_id} ({job.kind})", requested=1, done=1)
        touched = [job.pk, *([clone_of.pk] if clone_of is not None else [])]
        AuditEventJob.objects.bulk_create([AuditEventJob(event=event, job_id=job_id) for job_id in touched])
    return event, job


def staff_worker_stop(*, name: str, user, reason: str = "") -> AuditEvent:
    """Ask a worker to stop once its current job is done (it finishes that job and records it). Workers
    serve every tenant: superusers only, checked now."""
    if not (user.is_active and user.is_superuser):
        raise PermissionDenied("Only superusers stop workers; they serve every tenant.")
    try:
        asked = transport.worker_stop(name)
    except transport.TransportError as exc:
        return audit_event_record(user=user, action=AuditAction.WORKER_STOP, target=f"worker {name}", reason=reason,
                                  state=AuditState.FAILED, outcome=f"Redis unreachable: {exc}", requested=1)
    if not asked:
        return audit_event_record(user=user, action=AuditAction.WORKER_STOP, target=f"worker {name}", reason=reason,
                                  state=AuditState.FAILED, outcome="No such worker is running.", requested=1)
    return audit_event_record(user=user, action=AuditAction.WORKER_STOP, target=f"worker {name}", reason=reason,
                              outcome="Asked to stop after its current job.", requested=1, done=1)


def staff_tenant_pause(*, tenant: Tenant, user, reason: str = "") -> AuditEvent:
    """The kill switch: none of the tenant's jobs starts until resumed. Its waiting jobs stay in the
    database (those queued in Redis are taken back); running ones finish."""
    _check_tenant_admin(user, tenant)
    Tenant.objects.filter(pk=tenant.pk, paused_at__isnull=True).update(paused_at=timezone.now(), paused_by=user)
    relay.forget_tenant_load()
    held = relay.hold_paused()
    Job.objects.filter(tenant=tenant, status=Status.PENDING).update(progress_message=relay.HELD_PAUSED)
    return audit_event_record(user=user, action=AuditAction.TENANT_PAUSE, tenant=tenant, target=f"tenant {tenant}",
                              reason=reason, outcome=f"Paused; {held} queued job(s) taken back from Redis.",
                              done=held, requested=held)


def staff_tenant_resume(*, tenant: Tenant, user, reason: str = "") -> AuditEvent:
    """Lift the kill switch: the tenant's waiting jobs are handed over as far as its limit allows."""
    _check_tenant_admin(user, tenant)
    Tenant.objects.filter(pk=tenant.pk).update(paused_at=None, paused_by=None)
    relay.forget_tenant_load()
    waiting = Job.objects.filter(tenant=tenant, status=Status.PENDING, progress_message=relay.HELD_PAUSED)
    waiting.update(progress_message=relay.HELD_AT_LIMIT)  # until `refill` takes them: those left are over it
    transaction.on_commit(lambda: relay.refill(tenant.pk), robust=True)
    return audit_event_record(user=user, action=AuditAction.TENANT_RESUME, tenant=tenant, target=f"tenant {tenant}",
                              reason=reason, outcome="Resumed.")


def staff_tenant_cancel_waiting(*, tenant: Tenant, user, reason: str = "") -> AuditEvent:
    """Cancel every job the tenant has waiting (pending, scheduled, queued, retrying), audited as one action."""
    _check_tenant_admin(user, tenant)
    return staff_jobs_act(action=AuditAction.CANCEL, user=user, reason=reason,
                          selection=f"every waiting job of tenant {tenant.slug}",
                          jobs=Job.objects.filter(tenant=tenant, status__in=WAITING))


def _check_tenant_admin(user, tenant: Tenant) -> None:
    if not (user.is_active and user.is_staff and user_has_role(user=user, role=Role.ADMIN, tenant=tenant)):
        raise PermissionDenied(f"Only {tenant}'s admins (and superusers) may do this.")


def _check_superuser(user, action: str, queue: str, reason: str) -> None:
    if user.is_active and user.is_superuser:
        return
    message = "Only superusers pause and resume queues; they are shared by all tenants."
    audit_event_record(user=user, action=action, target=f"queue {queue}", reason=reason, state=AuditState.REFUSED,
                       outcome=f"Refused: {message}", requested=1, refused=1)
    raise PermissionDenied(message)


def _check_queue(name: str) -> None:
    if name not in settings.RQ_QUEUES:
        raise ValueError(f"Unknown queue {name!r}; configured queues: {', '.join(settings.RQ_QUEUES)}")


def _permitted_tenants(user, role: str) -> Collection[int | None] | None:
    """Tenant ids where `user` may act (None: everywhere, system jobs included)."""
    if user.is_superuser:
        return None
    if not user.is_active:
        return frozenset()
    return frozenset(tenant_ids_with_role(user=user, role=role))


def _target(spec: JobAction, days: int | None) -> str:
    if spec.name == AuditAction.CLEAN:
        return f"finished more than {days} day(s) ago"
    return f"jobs that are {', '.join(spec.applies_to)}"


# What a job action did to each job it acted on, as its message says it ("Retry: 1 job queued").
_ACTION_RESULT = {
    AuditAction.RETRY: "queued", AuditAction.RUN_NOW: "queued to run now", AuditAction.CANCEL: "cancelled", AuditAction.STOP: "asked to stop",
    AuditAction.DELETE: "deleted", AuditAction.CLEAN: "deleted", AuditAction.PIN: "pinned",
    AuditAction.UNPIN: "unpinned",
}


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _settle(event: AuditEvent, spec: JobAction, tenants_seen: set[int | None], *, requested: int,
            only: Job | None = None, name_target: bool = True) -> AuditEvent:
    event.requested = requested
    if event.tenant_id is None and len(tenants_seen) == 1:
        event.tenant_id = next(iter(tenants_seen))
    # Skipped jobs are expected (a retry of a mixed selection); only refusals make an action partial.
    if event.refused and not event.done:
        event.state = AuditState.REFUSED
    elif event.refused:
        event.state = AuditState.PARTIAL
    else:
        event.state = AuditState.DONE
    result = _ACTION_RESULT.get(spec.name, "done")
    if event.done == requested:
        parts = [f"{spec.label}: {_jobs(event.done)} {result}"]
    else:
        parts = [f"{spec.label}: {event.done or 'none'} of {_jobs(requested)} {result}"]
    if only is not None:
        # A one-job action names its job, in the audit trail and in the message.
        if name_target:
            event.target = f"job {only.short_id} ({only.kind})"
        parts[0] += f" (job {only.short_id}, {only.kind})"
    if event.skipped:
        parts.append(f"{event.skipped} skipped (not {' or '.join(spec.applies_to)})")
    if event.refused:
        parts.append(f"{event.refused} refused (your role in their tenant does not allow {spec.label.lower()})")
    event.outcome = "; ".join(parts) + "."
    event.finished_at = timezone.now()
    event.save()
    return event


def staff_action_failed(*, event: AuditEvent, error: str, final: bool) -> None:
    """A background action's attempt failed; unless it was the last, the next attempt carries on."""
    if final:
        AuditEvent.objects.filter(pk=event.pk).update(state=AuditState.FAILED, outcome=error[:2000],
                                                       finished_at=timezone.now())
    else:
        AuditEvent.objects.filter(pk=event.pk).update(outcome=f"{error[:1900]} (will try again)")


def membership_recorded(*, user, membership, change: str) -> AuditEvent:
    """Record a membership added, changed or removed through the admin."""
    action = {"add": AuditAction.MEMBERSHIP_ADD, "change": AuditAction.MEMBERSHIP_CHANGE,
              "delete": AuditAction.MEMBERSHIP_DELETE}[change]
    return audit_event_record(user=user, action=action, tenant=membership.tenant,
                              target=f"{membership.user.get_username()} as {membership.get_role_display()}")
