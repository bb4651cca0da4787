"""Maintenance: retention (finished jobs and every app's expired records, deleted daily in short batches)
and the built-in system schedules, with one way for apps to plug in, from their own `ready()`:

    maintenance.cleaner_register("reports", report_delete_expired)     # now -> {tenant: count}
    maintenance.system_schedule_register(SystemSchedule(name="Alert check", kind=..., cron="* * * * *"))

Each tenant keeps succeeded jobs JOBS_RETENTION_SUCCEEDED_DAYS and failed or cancelled ones
JOBS_RETENTION_FAILED_DAYS, unless it sets its own; pinned jobs are kept. Batches of
JOBS_CLEANUP_BATCH rows, each in its own short transaction, so no table is locked for long and workers
keep writing while it runs. System schedules are made by `jobs.schedules.services.system_schedules_ensure`
when a scheduler starts.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs.models import Job, KindRetention, Status
from jobs.registry import all_kinds
from tenants.models import Tenant

logger = logging.getLogger(__name__)

CLEANUP_KIND = "maintenance.cleanup"
CLEANUP_SCHEDULE_NAME = "Retention cleanup"
SYSTEM = "system"

Cleaner = Callable[[datetime], Mapping[str, int]]


@dataclass(frozen=True)
class SystemSchedule:
    """A schedule without a tenant that the platform itself needs (made when missing, paused to stop it).

    `cron` may be a callable, read when the schedule is made (it names a setting); `wanted` says whether
    it should exist at all (alerts only when someone is told).
    """

    name: str
    kind: str
    cron: str | Callable[[], str]
    misfire_policy: str = "skip"  # jobs.schedules.models.MisfirePolicy
    wanted: Callable[[], bool] = lambda: True

    def cron_expression(self) -> str:
        return self.cron() if callable(self.cron) else self.cron


_cleaners: dict[str, Cleaner] = {}
_system_schedules: dict[str, SystemSchedule] = {}


def cleaner_register(name: str, cleaner: Cleaner) -> None:
    """`cleaner(now)` deletes its app's expired records and counts them per tenant slug (or "system");
    the retention cleanup's result reports them under `name`. Registering again replaces it."""
    _cleaners[name] = cleaner


def system_schedule_register(schedule: SystemSchedule) -> None:
    _system_schedules[schedule.kind] = schedule


def system_schedules() -> list[SystemSchedule]:
    return list(_system_schedules.values())


def retention_cleanup(*, now: datetime | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Delete everything past retention; the counts per tenant (slug, or "system") and per kind of record.

    A finished job is kept for its tenant's days for its kind if set, else its kind's, else its tenant's,
    else the project's; then each tenant keeps at most its newest `keep_succeeded` / `keep_failed`
    (JOBS_KEEP_* by default). Pinned jobs are always kept."""
    now = now or timezone.now()
    jobs: Counter = Counter()
    for statuses, field, default, keep_field, keep_default in [
        ((Status.SUCCEEDED,), "succeeded", settings.JOBS_RETENTION_SUCCEEDED_DAYS, "keep_succeeded",
         settings.JOBS_KEEP_SUCCEEDED),
        ((Status.FAILED, Status.CANCELLED), "failed", settings.JOBS_RETENTION_FAILED_DAYS, "keep_failed",
         settings.JOBS_KEEP_FAILED),
    ]:
        groups = _retention_groups(statuses, field, default, now) + _count_groups(statuses, keep_field, keep_default)
        for rows in groups:
            # Oldest first; attempts go with their job (on delete cascade).
            jobs.update(delete_in_batches(rows.order_by("updated_at"), "tenant_id",
                                          progress=progress and (lambda done: progress(f"{done} jobs deleted"))))
    report = {"jobs": jobs}
    for name, cleaner in _cleaners.items():
        report[name] = Counter(cleaner(now))
    return {name: dict(sorted(counts.items())) for name, counts in report.items()}


def retention_longest_days() -> int:
    """How long records that outlive jobs keep (email ledger, schedule runs): the longest job retention."""
    return max(settings.JOBS_RETENTION_FAILED_DAYS, settings.JOBS_RETENTION_SUCCEEDED_DAYS)


def _retention_groups(statuses, state: str, default: int, now: datetime) -> list[QuerySet]:
    """One query per distinct retention, most specific first: a tenant's own for a kind, a kind's, a
    tenant's, the project's default; each leaves out what a more specific one decides."""
    finished = Job.objects.filter(status__in=statuses, pinned=False)

    def older_than(days: int) -> Q:
        # updated_at is when a finished job finished (nothing writes it afterwards), and the
        # (status, updated_at) index serves the range.
        return Q(updated_at__lt=now - timedelta(days=days))

    groups = []
    pairs = KindRetention.objects.exclude(**{f"{state}_days__isnull": True}).values_list(
        "tenant_id", "kind", f"{state}_days")
    by_pair = Q(pk__in=[])  # matches nothing
    for tenant_id, kind, days in pairs:
        groups.append(finished.filter(older_than(days), tenant_id=tenant_id, kind=kind))
        by_pair |= Q(tenant_id=tenant_id, kind=kind)
    kind_days = {kind.name: days for kind in all_kinds()
                 if (days := getattr(kind, f"retention_{state}_days")) is not None}
    for kind, days in kind_days.items():
        groups.append(finished.filter(older_than(days), kind=kind).exclude(by_pair))
    general = finished.exclude(by_pair).exclude(kind__in=list(kind_days))
    overrides: dict[int, list[int]] = {}
    for tenant_id, days in Tenant.objects.exclude(**{f"retention_{state}_days__isnull": True}).values_list(
            "pk", f"retention_{state}_days"):
        overrides.setdefault(days, []).append(tenant_id)
    overridden = [tenant_id for ids in overrides.values() for tenant_id in ids]
    groups.append(general.filter(older_than(default)).exclude(tenant_id__in=overridden))
    for days, tenant_ids in overrides.items():
        groups.append(general.filter(older_than(days), tenant_id__in=tenant_ids))
    return groups


def _count_groups(statuses, keep_field: str, default: int | None) -> list[QuerySet]:
    """Per tenant with a cap (its own, or the default for all): its finished jobs past the newest N."""
    tenants = Tenant.objects.all() if default is not None else Tenant.objects.exclude(**{f"{keep_field}__isnull": True})
    groups = []
    for tenant_id, own in tenants.values_list("pk", keep_field):
        keep = default if own is None else own
        newest_first = Job.objects.filter(tenant_id=tenant_id, status__in=statuses, pinned=False).order_by(
            "-updated_at", "-id")
        groups.append(Job.objects.filter(pk__in=newest_first.values("pk")[keep:]))
    return groups


def delete_in_batches(rows: QuerySet, tenant_field: str, *,
                      progress: Callable[[int], None] | None = None) -> Counter:
    """Delete `rows` JOBS_CLEANUP_BATCH at a time, each batch in its own short transaction; counts per
    tenant slug (or "system"), read through `tenant_field`. `progress(deleted so far)` after each batch."""
    deleted: Counter = Counter()
    slugs = dict(Tenant.objects.values_list("pk", "slug"))
    while True:
        with transaction.atomic():
            batch = list(rows.values_list("pk", tenant_field)[: settings.JOBS_CLEANUP_BATCH])
            if not batch:
                return deleted
            rows.model.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
        deleted.update(slugs.get(tenant_id, SYSTEM) if tenant_id else SYSTEM for _, tenant_id in batch)
        if progress:
            progress(sum(deleted.values()))
