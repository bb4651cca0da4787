"""Reads for the JSON API: within the token's tenant, job pages (keyset on the time-ordered id), one job,
queue statistics, schedules, the kinds a token may start; for platform tokens, every queue and tenant."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from jobs import relay
from jobs.models import UNFINISHED, Attempt, Batch, Job, Status
from jobs.registry import Kind, get_kind, public_kind_names
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.selectors import QueueRow, job_search, queue_overview
from tenants.models import Tenant

_CURSOR_VERSION = b"\x01"
# base64url (no padding) of the version byte and a 16-byte id: exactly the strings of this pattern.
CURSOR_PATTERN = r"^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$"
_NOT_A_CURSOR = "Not a cursor this API handed out; use next_cursor from the previous page."


class CursorInvalid(ValueError):
    """A cursor this API did not hand out (or from an incompatible version)."""


def cursor_encode(job_id: UUID) -> str:
    """An opaque cursor: the last id of a page, versioned, base64url without padding."""
    return base64.urlsafe_b64encode(_CURSOR_VERSION + job_id.bytes).rstrip(b"=").decode()


def cursor_decode(cursor: str) -> UUID:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise CursorInvalid(_NOT_A_CURSOR)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return UUID(bytes=raw[1:])


@dataclass(frozen=True)
class JobFilter:
    statuses: tuple[str, ...] = ()
    kind: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    has_error: bool | None = None
    search: str = ""


def api_job_page(*, tenant: Tenant, filters: JobFilter, limit: int, cursor: str | None = None,
                 ) -> tuple[list[Job], str | None]:
    """One page of the tenant's jobs, newest first, and the cursor of the next page (None on the last).

    Keyset pagination on the primary key (UUIDv7, time-ordered): each page is one index range scan,
    whatever its depth, and rows arriving meanwhile never shift a page.
    """
    jobs = _filtered(Job.objects.filter(tenant=tenant), filters)
    if cursor:
        jobs = jobs.filter(pk__lt=cursor_decode(cursor))
    rows = list(jobs.order_by("-pk")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], cursor_encode(rows[limit - 1].pk)
    return rows, None


def _filtered(jobs: QuerySet[Job], filters: JobFilter) -> QuerySet[Job]:
    if filters.statuses:
        jobs = jobs.filter(status__in=filters.statuses)
    if filters.kind:
        jobs = jobs.filter(kind=filters.kind)
    if filters.queue:
        jobs = jobs.filter(queue=filters.queue)
    if filters.created_after:
        jobs = jobs.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        jobs = jobs.filter(created_at__lt=filters.created_before)
    if filters.has_error is not None:
        jobs = jobs.exclude(last_error="") if filters.has_error else jobs.filter(last_error="")
    if filters.search.strip():
        jobs = job_search(jobs, filters.search)  # as the admin's search
    return jobs


def api_job_get(*, tenant: Tenant, job_id: UUID) -> Job:
    """One of the tenant's jobs with its attempts; Http404 for any other id (another tenant's too)."""
    attempts = Prefetch("attempt_set", queryset=Attempt.objects.order_by("number"))
    job = Job.objects.filter(tenant=tenant, pk=job_id).prefetch_related(attempts).first()
    if job is None:
        raise Http404(f"No job {job_id}.")
    return job


def api_queue_stats(*, tenant: Tenant | None) -> list[QueueRow]:
    """The queues page's figures for one tenant's jobs, or (None, for a platform token) everyone's."""
    return queue_overview(jobs=Job.objects.all() if tenant is None else Job.objects.filter(tenant=tenant))


@dataclass
class TenantStats:
    tenant: Tenant
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNFINISHED, 0))
    failed_last_hour: int = 0
    failed_last_day: int = 0

    @property
    def concurrency_limit(self) -> int | None:
        """Jobs it may have queued or running at once; None: no limit."""
        return relay.concurrency_limit_of(self.tenant.concurrency_limit) or None


def api_tenant_stats(*, tenants: QuerySet[Tenant], now: datetime | None = None) -> list[TenantStats]:
    """Per tenant: its unfinished jobs by status and its failures of the last hour and day (two grouped
    queries over unfinished rows and the last day's failures, whatever the number of tenants)."""
    now = now or timezone.now()
    rows = {tenant.pk: TenantStats(tenant=tenant) for tenant in tenants.order_by("slug")}
    jobs = Job.objects.filter(tenant__in=list(rows))
    for tenant_id, status, count in (jobs.filter(status__in=UNFINISHED).values_list("tenant", "status")
                                     .annotate(n=Count("id")).order_by()):
        rows[tenant_id].counts[status] = count
    failed = (jobs.filter(status=Status.FAILED, updated_at__gte=now - timedelta(hours=24)).values("tenant")
              .annotate(day=Count("id"), hour=Count("id", filter=Q(updated_at__gte=now - timedelta(hours=1))))
              .order_by())
    for entry in failed:
        rows[entry["tenant"]].failed_last_day, rows[entry["tenant"]].failed_last_hour = entry["day"], entry["hour"]
    return list(rows.values())


def api_schedule_list(*, tenant: Tenant) -> list[Schedule]:
    """The tenant's schedules by name, each with its latest run as `last_run` (None before the first):
    two queries, however many schedules."""
    return _with_last_run(Schedule.objects.filter(tenant=tenant).order_by("name", "pk"))


def api_schedule_get(*, tenant: Tenant, schedule_id: int) -> Schedule:
    """One of the tenant's schedules with its `last_run`; Http404 for another tenant's, a system one, or none."""
    schedules = _with_last_run(Schedule.objects.filter(tenant=tenant, pk=schedule_id))
    if not schedules:
        raise Http404(f"No schedule {schedule_id} in this tenant.")
    return schedules[0]


def _with_last_run(schedules: QuerySet[Schedule]) -> list[Schedule]:
    latest = ScheduleRun.objects.filter(schedule=OuterRef("pk")).order_by("-fire_at").values("pk")[:1]
    rows = list(schedules.annotate(last_run_id=Subquery(latest)))
    runs = ScheduleRun.objects.in_bulk([row.last_run_id for row in rows if row.last_run_id])
    for row in rows:
        row.last_run = runs.get(row.last_run_id)
    return rows


def api_kind_list() -> list[Kind]:
    """The kinds a token may start: those registered `public=True`."""
    return [get_kind(name) for name in public_kind_names()]


def api_batch_list(*, tenant: Tenant, limit: int = 100) -> list[Batch]:
    """The tenant's newest batches and chains."""
    return list(Batch.objects.filter(tenant=tenant).order_by("-created_at", "-id")[:limit])


def api_batch_get(*, tenant: Tenant, batch_id: int) -> Batch:
    """One of the tenant's batches; 404 (Http404) for another tenant's or none."""
    batch = Batch.objects.filter(tenant=tenant, pk=batch_id).first()
    if batch is None:
        raise Http404(f"No batch {batch_id} in this tenant.")
    return batch
