"""Retention: finished jobs, their attempts, and expired records are deleted daily, in short batches.

Each tenant keeps succeeded jobs JOBS_RETENTION_SUCCEEDED_DAYS and failed or cancelled ones
JOBS_RETENTION_FAILED_DAYS, unless it sets its own; pinned jobs are kept. Batches of
JOBS_CLEANUP_BATCH rows, each in its own short transaction, so the jobs table is never locked for long
and workers keep writing while it runs.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import Attempt, Job, Status
from tenants.models import Tenant

logger = logging.getLogger(__name__)

CLEANUP_KIND = "maintenance.cleanup"
SYSTEM = "system"

# Extra cleaners (reports' expired files, say) register here: each deletes what has expired and
# returns {tenant key: count}.
EXTRA_CLEANERS: list[Callable[[datetime], dict[str, int]]] = []
# Other apps' built-in system schedules (the ops alert check) register a function here that makes theirs
# when missing; `system_schedules_ensure` runs them with the cleanup's, when a scheduler starts.
EXTRA_SYSTEM_SCHEDULES: list[Callable[[], object]] = []


def retention_cleanup(*, now: datetime | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Delete everything past retention; the counts per tenant (slug, or "system") and per kind of record."""
    now = now or timezone.now()
    report: dict[str, Counter] = {"jobs": Counter(), "webhook_deliveries": Counter(), "emails": Counter()}
    for statuses, field, default in [((Status.SUCCEEDED,), "retention_succeeded_days",
                                      settings.JOBS_RETENTION_SUCCEEDED_DAYS),
                                     ((Status.FAILED, Status.CANCELLED), "retention_failed_days",
                                      settings.JOBS_RETENTION_FAILED_DAYS)]:
        for rows in _retention_groups(statuses, field, default, now):
            report["jobs"].update(_delete_jobs(rows, progress))
    report["webhook_deliveries"].update(_delete_expired_deliveries(now))
    report["emails"].update(_delete_expired_emails(now))
    for cleaner in EXTRA_CLEANERS:
        report.setdefault(cleaner.__module__, Counter()).update(cleaner(now))
    return {name: dict(sorted(counts.items())) for name, counts in report.items()}


def _retention_groups(statuses, field: str, default: int, now: datetime) -> list[QuerySet]:
    """One query per distinct retention: the default for every tenant without its own, then the others."""
    finished = Job.objects.filter(status__in=statuses, pinned=False)
    overrides: dict[int, list[int]] = {}
    for tenant_id, days in Tenant.objects.exclude(**{f"{field}__isnull": True}).values_list("pk", field):
        overrides.setdefault(days, []).append(tenant_id)
    overridden = [tenant_id for ids in overrides.values() for tenant_id in ids]
    # updated_at is when a finished job finished (nothing writes it afterwards), and the
    # (status, updated_at) index serves the range.
    groups = [finished.filter(updated_at__lt=now - timedelta(days=default)).exclude(tenant_id__in=overridden)]
    for days, tenant_ids in overrides.items():
        groups.append(finished.filter(updated_at__lt=now - timedelta(days=days), tenant_id__in=tenant_ids))
    return groups


def _delete_jobs(rows: QuerySet, progress) -> Counter:
    deleted: Counter = Counter()
    slugs = dict(Tenant.objects.values_list("pk", "slug"))
    while True:
        with transaction.atomic():
            batch = list(rows.order_by("updated_at").values_list("pk", "tenant_id")[: settings.JOBS_CLEANUP_BATCH])
            if not batch:
                return deleted
            ids = [job_id for job_id, _ in batch]
            Attempt.objects.filter(job_id__in=ids).delete()
            Job.objects.filter(pk__in=ids).delete()
        deleted.update(slugs.get(tenant_id, SYSTEM) if tenant_id else SYSTEM for _, tenant_id in batch)
        if progress:
            progress(f"{sum(deleted.values())} jobs deleted")


def delete_in_batches(rows: QuerySet, tenant_field: str) -> Counter:
    deleted: Counter = Counter()
    slugs = dict(Tenant.objects.values_list("pk", "slug"))
    while True:
        with transaction.atomic():
            batch = list(rows.values_list("pk", tenant_field)[: settings.JOBS_CLEANUP_BATCH])
            if not batch:
                return deleted
            rows.model.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
        deleted.update(slugs.get(tenant_id, SYSTEM) if tenant_id else SYSTEM for _, tenant_id in batch)


def _delete_expired_deliveries(now: datetime) -> Counter:
    from jobs.webhooks.models import WebhookDelivery

    cutoff = now - timedelta(days=settings.JOBS_RETENTION_DELIVERIES_DAYS)
    return delete_in_batches(WebhookDelivery.objects.filter(created_at__lt=cutoff), "message__tenant_id")


def _delete_expired_emails(now: datetime) -> Counter:
    # A message's ledger row is its guard against a second send, so it is kept as long as any job
    # could still ask for it: past the longest retention, and only once settled.
    from jobs.mail.models import SETTLED, OutboundEmail

    days = max(settings.JOBS_RETENTION_FAILED_DAYS, settings.JOBS_RETENTION_SUCCEEDED_DAYS)
    rows = OutboundEmail.objects.filter(created_at__lt=now - timedelta(days=days), state__in=SETTLED)
    return delete_in_batches(rows, "tenant_id")


CLEANUP_SCHEDULE_NAME = "Retention cleanup"


def system_schedules_ensure() -> None:
    """Make the built-in system schedules that are missing: the cleanup's and EXTRA_SYSTEM_SCHEDULES'."""
    cleanup_schedule_ensure()
    for ensure in EXTRA_SYSTEM_SCHEDULES:
        ensure()


def cleanup_schedule_ensure():
    """The built-in system schedule of the daily cleanup, at JOBS_CLEANUP_HOUR UTC, created the first
    time a scheduler starts (and again if deleted: pause it to stop it). Returns it."""
    from jobs.schedules.models import MisfirePolicy, Schedule
    from jobs.schedules.services import schedule_save

    existing = Schedule.objects.filter(tenant=None, kind=CLEANUP_KIND).order_by("pk").first()
    if existing is not None:
        return existing
    schedule = Schedule(tenant=None, name=CLEANUP_SCHEDULE_NAME, kind=CLEANUP_KIND, payload={},
                        cron=f"0 {settings.JOBS_CLEANUP_HOUR} * * *", timezone="UTC", misfire_policy=MisfirePolicy.ONCE)
    try:
        with transaction.atomic():
            return schedule_save(schedule=schedule)
    except IntegrityError:  # another scheduler made it a moment ago
        return Schedule.objects.get(tenant=None, name=CLEANUP_SCHEDULE_NAME)
