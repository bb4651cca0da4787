"""Writes for schedules: save, pause, resume, run now, delete, and firing.

The database decides every firing: a schedule row is locked while its due fire times are worked out
from `fired_through`, each firing is a `ScheduleRun` whose (schedule, fire time) is unique, and the
run's job is enqueued in the same transaction. rq-scheduler holds one entry per enabled schedule at its
next fire time, only to wake the scheduler process; `schedules_sync` rebuilds those entries from the
database (at start and on every reconcile pass), so a lost or doubled entry changes nothing.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import maintenance, transport
from jobs.models import AuditAction, Source
from jobs.registry import get_kind, kind_registered
from jobs.services import job_enqueue
from jobs.staff import audit_event_record
from jobs.schedules import cron
from jobs.schedules.models import MisfirePolicy, RunOutcome, Schedule, ScheduleRun

logger = logging.getLogger(__name__)

# Changing any of these moves the fire times: runs the old timing missed are not owed.
TIMING_FIELDS = ("cron", "timezone", "start_at", "end_at", "enabled")


def schedule_check(*, kind: str, payload: dict[str, Any] | None, cron_text: str, start_at: datetime | None,
                   end_at: datetime | None) -> dict[str, Any]:
    """The rules a schedule keeps beyond each field's own (the cron text and time zone are checked by
    `cron.cron_check` and `cron.timezone_check`): the kind exists, its payload is valid, an `@every`
    below a minute is one the kind allows, the end is after the start. Returns the payload as the kind
    validates it; a ValidationError names every field at fault (`payload.steps`, `cron`, `end_at`).

    The admin's form and the API both check here, so a schedule is refused alike wherever it comes from.
    """
    errors: dict[str, list[str]] = defaultdict(list)
    if start_at and end_at and end_at <= start_at:
        errors["end_at"].append("Must be after the start date.")
    if not kind_registered(kind):
        errors["kind"].append(f"No job kind {kind!r}.")
        raise ValidationError(dict(errors))
    seconds = cron.every_seconds(cron_text or "")
    if seconds is not None and seconds < 60:
        floor = get_kind(kind).repeat_min_seconds
        if floor is None:
            errors["cron"].append(f"{kind} may repeat at most once a minute here; @every {seconds}s is for kinds "
                                  "that allow it (@job_kind(repeat_min_seconds=...)).")
        elif seconds < floor:
            errors["cron"].append(f"{kind} may repeat at most every {floor} seconds, not every {seconds}.")
    try:
        payload = get_kind(kind).validate({} if payload is None else payload)
    except ValidationError as exc:
        for field, problems in exc.message_dict.items():  # the kind names them `payload.<field>`
            errors[field if field.startswith("payload") else "payload"].extend(problems)
    if errors:
        raise ValidationError(dict(errors))
    return payload


def schedule_save(*, schedule: Schedule, user=None, changed: Collection[str] = ()) -> Schedule:
    """Store a new or edited schedule (already validated) and register its next fire time after commit."""
    created = schedule.pk is None
    now = timezone.now()
    if created or set(changed) & set(TIMING_FIELDS):
        schedule.fired_through = max(schedule.fired_through or now, now)
    if created and user is not None and getattr(user, "is_authenticated", False):
        schedule.created_by = user
    schedule.next_fire_at = schedule.compute_next_fire_at()
    with transaction.atomic():
        schedule.save()
        if user is not None:
            _audit(user, AuditAction.SCHEDULE_ADD if created else AuditAction.SCHEDULE_CHANGE, schedule,
                   "Created." if created else f"Changed: {', '.join(sorted(changed)) or 'nothing'}.")
    _register_after_commit([schedule.pk])
    return schedule


def schedules_set_enabled(*, schedules: Collection[Schedule], enabled: bool, user=None) -> list[Schedule]:
    """Pause or resume; returns the schedules that changed. A resumed schedule does not catch up on the
    fire times it was paused for."""
    changed = []
    with transaction.atomic():
        rows = Schedule.objects.filter(pk__in=[s.pk for s in schedules], enabled=not enabled)
        for schedule in rows.select_for_update(of=("self",)).order_by("pk"):
            schedule.enabled = enabled
            schedule.fired_through = max(schedule.fired_through, timezone.now())
            schedule.next_fire_at = schedule.compute_next_fire_at()
            schedule.save(update_fields=["enabled", "fired_through", "next_fire_at", "updated_at"])
            if user is not None:
                _audit(user, AuditAction.SCHEDULE_RESUME if enabled else AuditAction.SCHEDULE_PAUSE, schedule,
                       f"Next run {schedule.next_fire_at:%Y-%m-%d %H:%M} UTC." if schedule.next_fire_at else "")
            changed.append(schedule)
    _register_after_commit([schedule.pk for schedule in changed])
    return changed


def schedule_run_now(*, schedule: Schedule, user=None) -> ScheduleRun:
    """Fire once now, outside the timing (the schedule's next fire time is unchanged)."""
    with transaction.atomic():
        run = _fire_one(schedule, timezone.now(), RunOutcome.MANUAL, user=user)
        if user is not None:
            _audit(user, AuditAction.SCHEDULE_RUN_NOW, schedule,
                   f"Job {run.job.short_id} enqueued." if run.job_id else run.note)
    return run


def schedule_delete(*, schedule: Schedule, user=None) -> None:
    """Delete a schedule with its runs (their jobs stay) and take it out of rq-scheduler."""
    schedule_id = schedule.pk
    with transaction.atomic():
        if user is not None:
            _audit(user, AuditAction.SCHEDULE_DELETE, schedule, "Deleted.")
        schedule.delete()
    transaction.on_commit(partial(_unregister, [schedule_id]), robust=True)


def schedule_fire_due(*, schedule_id: int, now: datetime | None = None) -> list[ScheduleRun]:
    """Fire what is due of one schedule, by its misfire policy, and register its next fire time.

    Two processes doing this at once take turns on the row lock; the second finds nothing due.
    """
    now = now or timezone.now()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=schedule_id).first()
        if schedule is None:
            transaction.on_commit(partial(_unregister, [schedule_id]), robust=True)
            return []
        runs = _fire_due(schedule, now) if schedule.enabled else []
        schedule.fired_through = max(schedule.fired_through, now)
        schedule.next_fire_at = schedule.compute_next_fire_at()
        Schedule.objects.filter(pk=schedule.pk).update(fired_through=schedule.fired_through,
                                                       next_fire_at=schedule.next_fire_at)
    _register_after_commit([schedule_id])
    return runs


def _fire_due(schedule: Schedule, now: datetime) -> list[ScheduleRun]:
    after = schedule.fired_through
    if schedule.start_at:
        after = max(after, schedule.start_at - timedelta(microseconds=1))
    until = min(now, schedule.end_at) if schedule.end_at else now
    if until <= after:
        return []
    policy = schedule.misfire_policy
    limit = settings.SCHEDULES_CATCHUP_LIMIT if policy == MisfirePolicy.ALL else 1
    due, total = cron.latest_fire_times(schedule.cron, schedule.tz, after=after, until=until, limit=limit)
    if not due:
        return []
    grace = timedelta(seconds=settings.SCHEDULES_MISFIRE_GRACE_SECONDS)
    late = [fire_at for fire_at in due if now - fire_at > grace]
    earlier = total - len(due)  # missed fire times before the ones in `due`
    if policy == MisfirePolicy.SKIP:
        if late:
            count = earlier + 1
            return [_record(schedule, due[-1], RunOutcome.SKIPPED, missed=count - 1,
                            note=f"{_runs(count)} missed while no scheduler ran; skipped by the schedule's policy.")]
        run = _fire_one(schedule, due[-1], RunOutcome.FIRED)
        if earlier:
            _annotate(run, earlier, f"{_runs(earlier)} missed before this one; skipped by the schedule's policy.")
        return [run]
    runs = [_fire_one(schedule, fire_at, RunOutcome.CAUGHT_UP if fire_at in late else RunOutcome.FIRED)
            for fire_at in due]
    if earlier:
        what = ("stands in for them (run once to catch up)" if policy == MisfirePolicy.ONCE
                else f"were not run: at most {limit} missed runs are caught up")
        _annotate(runs[0], earlier, f"{_runs(earlier)} missed before this one {what}.")
    return runs


def _runs(count: int) -> str:
    shown = f"{count:,}" if count < cron.COUNT_CAP else f"{cron.COUNT_CAP:,} or more"
    return f"{shown} run{'s' if count != 1 else ''}"


def _fire_one(schedule: Schedule, fire_at: datetime, outcome: str, *, user=None) -> ScheduleRun:
    try:
        with transaction.atomic():  # a savepoint: a duplicate or a refused payload leaves the rest intact
            run = ScheduleRun.objects.create(schedule=schedule, fire_at=fire_at, outcome=outcome,
                                             triggered_by=user if getattr(user, "is_authenticated", False) else None)
            run.job = job_enqueue(kind=schedule.kind, tenant=schedule.tenant, payload=schedule.payload,
                                  user=user, source=Source.SCHEDULE, priority=schedule.priority)
            run.save(update_fields=["job"])
            return run
    except IntegrityError:
        # Another process fired this very fire time: it has the run and the job.
        return ScheduleRun.objects.get(schedule=schedule, fire_at=fire_at)
    except ValidationError as exc:
        note = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()) \
            if hasattr(exc, "error_dict") else " ".join(exc.messages)
        logger.warning("Schedule %s (%s) could not enqueue its job: %s", schedule.pk, schedule.name, note)
        return _record(schedule, fire_at, RunOutcome.ERROR, note=note)


def _record(schedule: Schedule, fire_at: datetime, outcome: str, *, missed: int = 0, note: str = "") -> ScheduleRun:
    run, _ = ScheduleRun.objects.get_or_create(schedule=schedule, fire_at=fire_at,
                                               defaults={"outcome": outcome, "missed": missed, "note": note})
    return run


def _annotate(run: ScheduleRun, missed: int, note: str) -> None:
    run.missed, run.note = missed, note
    ScheduleRun.objects.filter(pk=run.pk).update(missed=missed, note=note)


def _audit(user, action: str, schedule: Schedule, outcome: str) -> None:
    audit_event_record(user=user, action=action, tenant=schedule.tenant, target=f"schedule {schedule.name}",
                       outcome=outcome)


# --- rq-scheduler entries ------------------------------------------------------------------------------


def _register_after_commit(schedule_ids: list[int]) -> None:
    transaction.on_commit(partial(schedules_register, schedule_ids), robust=True)


def schedules_register(schedule_ids: Collection[int]) -> None:
    """Put these schedules' entries in rq-scheduler at their next fire times (or take them out)."""
    wake_ups = dict(Schedule.objects.filter(pk__in=list(schedule_ids), enabled=True, next_fire_at__isnull=False)
                    .values_list("pk", "next_fire_at"))
    try:
        transport.schedule_entries_set(wake_ups)
        transport.schedule_entries_remove(set(schedule_ids) - set(wake_ups))
    except transport.TransportError as exc:
        logger.warning("Redis unreachable; schedules %s are registered at the next sync: %s", sorted(schedule_ids), exc)


def _unregister(schedule_ids: list[int]) -> None:
    try:
        transport.schedule_entries_remove(schedule_ids)
    except transport.TransportError as exc:
        logger.warning("Redis unreachable; deleted schedules %s are removed at the next sync: %s", schedule_ids, exc)


def schedules_sync() -> dict[str, int]:
    """Make rq-scheduler's entries match the database: one per enabled schedule, at its next fire time.

    Idempotent (stable entry ids), so running it at every scheduler start and reconcile pass never
    doubles a schedule; it also restores what Redis lost. Returns how many entries it set and removed.
    """
    for schedule in Schedule.objects.filter(enabled=True, next_fire_at__isnull=True):
        upcoming = schedule.compute_next_fire_at()
        if upcoming is not None:
            Schedule.objects.filter(pk=schedule.pk, next_fire_at__isnull=True).update(next_fire_at=upcoming)
    wanted = dict(Schedule.objects.filter(enabled=True, next_fire_at__isnull=False).values_list("pk", "next_fire_at"))
    held = transport.schedule_entries()
    to_set = {pk: at for pk, at in wanted.items() if pk not in held or abs(held[pk] - at.timestamp()) >= 1}
    to_remove = set(held) - set(wanted)
    transport.schedule_entries_set(to_set)
    transport.schedule_entries_remove(to_remove)
    return {"set": len(to_set), "removed": len(to_remove)}


def schedule_runs_delete_expired(now: datetime) -> Counter:
    """Retention for run records (a maintenance cleaner): kept as long as the longest job retention."""
    cutoff = now - timedelta(days=maintenance.retention_longest_days())
    return maintenance.delete_in_batches(ScheduleRun.objects.filter(fire_at__lt=cutoff), "schedule__tenant_id")


def system_schedules_ensure() -> list[Schedule]:
    """Make the registered system schedules (`maintenance.system_schedule_register`) that are missing and
    wanted, when a scheduler starts; a deleted one comes back (pause it to stop it). Returns them."""
    return [schedule for spec in maintenance.system_schedules() if spec.wanted()
            if (schedule := system_schedule_ensure(spec)) is not None]


def system_schedule_ensure(spec: maintenance.SystemSchedule) -> Schedule:
    """The system schedule of `spec.kind`, made now if there is none."""
    existing = Schedule.objects.filter(tenant=None, kind=spec.kind).order_by("pk").first()
    if existing is not None:
        return existing
    schedule = Schedule(tenant=None, name=spec.name, kind=spec.kind, payload={}, cron=spec.cron_expression(),
                        timezone="UTC", misfire_policy=spec.misfire_policy)
    try:
        with transaction.atomic():
            return schedule_save(schedule=schedule)
    except IntegrityError:  # another scheduler made it a moment ago
        return Schedule.objects.get(tenant=None, name=spec.name)
