"""Tenant-scoped reads for the staff pages: the job list's selection and search, queue overview,
throughput, failure groups, a job's story.

Every query here is bounded by an index: unfinished rows (few), failed or finished rows of the last
24 hours (the status/updated_at index), failure fingerprints (a partial index). None counts the table.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet, TextField
from django.db.models.functions import Cast, TruncHour
from django.http import QueryDict
from django.utils import timezone

from jobs import relay, transport
from jobs.stats import Bar
from jobs.models import (
    ACTIVE_STATUSES, SHORT_ID_LENGTH, UNFINISHED, Attempt, AuditEvent, AuditEventJob, Job, QueueState, Status, short_id_expression,
)
from tenants.models import Role, Tenant
from tenants.selectors import tenant_ids_with_role, tenant_list_for_user

WAITING_FOR_WORKER = (Status.PENDING, Status.QUEUED)


def job_list_for_user(*, user) -> QuerySet[Job]:
    """Jobs a user may see: their tenants' (any role), and system jobs for superusers."""
    if user.is_superuser:
        return Job.objects.all()
    return Job.objects.filter(tenant_id__in=tenant_ids_with_role(user=user, role=Role.VIEWER))


# `report_id:7`, `address.city:Paris`: a payload field (dotted for nested ones) and the value it holds.
_PAYLOAD_TERM = re.compile(r"(?<!\S)([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?!//)(\S+)")  # not a URL's scheme


def job_search(jobs: QuerySet[Job], term: str) -> QuerySet[Job]:
    """The jobs a search term finds: a full id, an 8-character short id, payload fields (`report_id:7`,
    every one given must match), or text in the kind, payload or error (what is left of the term)."""
    term = term.strip()
    fields = _PAYLOAD_TERM.findall(term)
    if fields:
        for name, value in fields:
            jobs = jobs.filter(_payload_field_is(name, value))
        term = _PAYLOAD_TERM.sub(" ", term).strip()
    if not term:
        return jobs
    try:
        return jobs.filter(pk=UUID(term))
    except ValueError:
        pass
    if re.fullmatch(rf"[0-9a-fA-F]{{{SHORT_ID_LENGTH}}}", term):
        # Served by the job_short_id expression index.
        by_short_id = jobs.annotate(short_id_text=short_id_expression()).filter(short_id_text=term.lower())
        if by_short_id.exists():
            return by_short_id
    text = Q(kind__icontains=term) | Q(last_error__icontains=term) | Q(payload_text__icontains=term)
    return jobs.annotate(payload_text=Cast("payload", TextField())).filter(text)


def _payload_field_is(name: str, value: str) -> Q:
    """The payload field holds `value` as typed: as text, or as the number, true, false or null it spells."""
    lookup = "payload__" + name.replace(".", "__")
    matches = Q(**{lookup: value})
    try:
        scalar = json.loads(value)
    except ValueError:
        return matches
    if scalar is None:
        return matches | Q(**{lookup: None})  # JSON null (a missing field is not null)
    if isinstance(scalar, bool | int | float):
        return matches | Q(**{lookup: scalar})
    return matches


# What the Jobs admin's list filters on, by query-string parameter: its list filters' own parameters
# (status, tenant, created date, pinned as Django's filters name them; kind, queue, error as ours do)
# and the filters the queues and triage pages link with.
FIELD_LOOKUPS = frozenset({"status__exact", "status__in", "tenant__id__exact", "tenant__isnull", "created_at__gte",
                           "created_at__lt", "created_at__isnull", "pinned__exact", "pinned__isnull",
                           "error_fingerprint"})
OWN_FILTERS = {
    "kind": lambda jobs, value: jobs.filter(kind=value),
    "queue": lambda jobs, value: jobs.filter(queue=value),
    "has_error": lambda jobs, value: {"yes": jobs.exclude(last_error=""), "no": jobs.filter(last_error="")}.get(
        value, jobs),
    "q": job_search,
}
def _lookup_value(name: str, value: str):
    # As the admin reads its filters' parameters: a list for `__in`, a yes or no for `__isnull`.
    if name.endswith("__in"):
        return value.split(",")
    if name.endswith("__isnull"):
        return value.lower() not in ("", "false", "0")
    return value


# The page, the order, and where the admin returns after a change: they select nothing.
NOT_FILTERS = frozenset({"p", "o", "_changelist_filters"})


def job_selection(*, user, selection: str) -> QuerySet[Job]:
    """The jobs the Jobs admin lists for `user` under `selection`, its query string: filters, search and
    the user's scope as they are now. A large action replays its selection here, in a worker, so it acts
    on exactly what was confirmed, under the actor's current permissions. An unknown parameter is a
    ValueError (the admin refuses it too)."""
    jobs = job_list_for_user(user=user)
    for name, values in QueryDict(selection).lists():
        value = values[-1]
        if name in NOT_FILTERS:
            continue
        if name in OWN_FILTERS:
            jobs = OWN_FILTERS[name](jobs, value)
        elif name in FIELD_LOOKUPS:
            jobs = jobs.filter(**{name: _lookup_value(name, value)})
        else:
            raise ValueError(f"The job list has no filter {name!r}.")
    return jobs


@dataclass
class QueueRow:
    name: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNFINISHED, 0))
    failed_hour: int = 0
    failed_day: int = 0
    oldest_waiting: datetime | None = None
    workers: int | None = None
    paused_at: datetime | None = None
    tenants: list[tuple[str, dict[str, int]]] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(status, 0) for status in (Status.PENDING, Status.QUEUED))

    @property
    def oldest_waiting_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_waiting if self.oldest_waiting else None


def queue_overview(*, jobs: QuerySet[Job], now: datetime | None = None) -> list[QueueRow]:
    """Per configured queue, of `jobs` (a user's scope, one tenant's, or all): unfinished jobs by status and
    by tenant, recent failures, the oldest job waiting for a worker; and the queue's pause and workers.

    Reads only unfinished rows and the last day's failures."""
    now = now or timezone.now()
    rows = {name: QueueRow(name=name) for name in settings.RQ_QUEUES}
    per_tenant: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    unfinished = jobs.filter(status__in=UNFINISHED).values_list("queue", "tenant__name", "status")
    for queue, tenant, status, count in unfinished.annotate(n=Count("id")).order_by():
        row = rows.get(queue) or rows.setdefault(queue, QueueRow(name=queue))
        row.counts[status] += count
        per_tenant[queue][tenant or "(system)"][status] = count
    failed = (jobs.filter(status=Status.FAILED, updated_at__gte=now - timedelta(hours=24)).values("queue")
              .annotate(day=Count("id"), hour=Count("id", filter=Q(updated_at__gte=now - timedelta(hours=1))))
              .order_by())
    for entry in failed:
        row = rows.get(entry["queue"]) or rows.setdefault(entry["queue"], QueueRow(name=entry["queue"]))
        row.failed_day, row.failed_hour = entry["day"], entry["hour"]
    oldest = (jobs.filter(status__in=WAITING_FOR_WORKER).values("queue").annotate(oldest=Min("created_at"))
              .order_by())
    for entry in oldest:
        row = rows.get(entry["queue"]) or rows.setdefault(entry["queue"], QueueRow(name=entry["queue"]))
        row.oldest_waiting = entry["oldest"]
    for state in QueueState.objects.filter(paused_at__isnull=False):
        if state.name in rows:
            rows[state.name].paused_at = state.paused_at
    try:
        workers = transport.workers_by_queue()
    except transport.TransportError:
        workers = None  # shown as "unknown": Redis is down, the database still answers
    for row in rows.values():
        row.workers = None if workers is None else workers.get(row.name, 0)
        row.tenants = sorted((tenant, dict(counts)) for tenant, counts in per_tenant[row.name].items())
    return list(rows.values())


@dataclass
class LimitRow:
    """A limit across tenants and, among `jobs`, what is under it now."""
    scope: relay.GlobalScope
    busy: int  # queued or running
    waiting: int  # held for it


def global_limit_rows(*, jobs: QuerySet[Job]) -> list[LimitRow]:
    """Each limit across tenants with the jobs of `jobs` (a user's scope) under it: queued or running, and
    waiting for it. Two counts per limit, over the small active and pending indexes."""
    return [LimitRow(scope=scope, busy=scope.jobs(jobs.filter(status__in=ACTIVE_STATUSES)).count(),
                     waiting=scope.jobs(jobs.filter(status=Status.PENDING)).count())
            for scope in relay.global_scopes()]


def throughput_by_hour(*, user, hours: int = 24, now: datetime | None = None) -> list[Bar]:
    """Jobs finished per hour (succeeded, failed) over the last `hours` hours, oldest first."""
    now = now or timezone.now()
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    buckets = {start + timedelta(hours=i): Bar(start=start + timedelta(hours=i)) for i in range(hours)}
    finished = (job_list_for_user(user=user)
                .filter(status__in=(Status.SUCCEEDED, Status.FAILED), updated_at__gte=start)
                .annotate(hour=TruncHour("updated_at")).values_list("hour", "status").annotate(n=Count("id"))
                .order_by())
    for hour, status, count in finished:
        bucket = buckets.get(hour)
        if bucket is not None:
            setattr(bucket, status, count)
    return list(buckets.values())


# A worker renews its key at least every few seconds while it lives; quieter than this, it may be gone.
WORKER_QUIET_SECONDS = 60


@dataclass
class WorkerRow:
    worker: transport.WorkerInfo
    job: Job | None = None  # the job it runs now, when the user may see it
    busy_elsewhere: bool = False  # it runs a job of a tenant the user does not see
    uptime: timedelta | None = None
    quiet_for: timedelta | None = None

    @property
    def quiet(self) -> bool:
        return self.quiet_for is not None and self.quiet_for.total_seconds() > WORKER_QUIET_SECONDS


def worker_rows(*, user, workers: list[transport.WorkerInfo], now: datetime | None = None) -> list[WorkerRow]:
    """Workers with the job each runs now, from the database's open attempts (one query): a job of a
    tenant the user cannot see is only counted as busy, never named."""
    now = now or timezone.now()
    open_attempts = (Attempt.objects.filter(ended_at__isnull=True, worker_name__in=[w.name for w in workers])
                     .select_related("job", "job__tenant").order_by("started_at"))
    visible = job_list_for_user(user=user)
    running: dict[str, Job] = {attempt.worker_name: attempt.job for attempt in open_attempts}
    seen = set(visible.filter(pk__in=[job.pk for job in running.values()]).values_list("pk", flat=True))
    rows = []
    for worker in workers:
        job = running.get(worker.name)
        rows.append(WorkerRow(worker=worker, job=job if job is not None and job.pk in seen else None,
                              busy_elsewhere=job is not None and job.pk not in seen,
                              uptime=now - worker.born if worker.born else None,
                              quiet_for=now - worker.last_heartbeat if worker.last_heartbeat else None))
    return rows


@dataclass
class FailureGroup:
    fingerprint: str
    kind: str
    error: str
    failed: int
    retrying: int
    first_seen: datetime
    last_seen: datetime
    tenants: list[str] = field(default_factory=list)


def failure_groups(*, user, limit: int = 100) -> list[FailureGroup]:
    """Failed and retrying jobs grouped by fingerprint, most recently seen first.

    The grouping reads only the job_failure_fingerprint index (its INCLUDE columns), not the rows;
    each group's message comes from its latest row, one index lookup per group.
    """
    jobs = job_list_for_user(user=user).filter(status__in=(Status.FAILED, Status.RETRYING)).exclude(
        error_fingerprint="")
    grouped = (jobs.values("error_fingerprint")
               .annotate(kind=Min("kind"),
                         failed=Count("status", filter=Q(status=Status.FAILED)),
                         retrying=Count("status", filter=Q(status=Status.RETRYING)),
                         first_seen=Min("updated_at"), last_seen=Max("updated_at"))
               .order_by("-last_seen")[:limit])
    groups = [FailureGroup(fingerprint=g.pop("error_fingerprint"), error="", **g) for g in grouped]
    if not groups:
        return groups
    latest = Q()
    for group in groups:
        latest |= Q(error_fingerprint=group.fingerprint, updated_at=group.last_seen)
    errors = dict(jobs.filter(latest).values_list("error_fingerprint", "last_error"))
    tenant_ids: dict[str, list[int | None]] = defaultdict(list)
    pairs = jobs.filter(error_fingerprint__in=[g.fingerprint for g in groups]).values_list(
        "error_fingerprint", "tenant_id").distinct().order_by()
    for fingerprint, tenant_id in pairs:
        tenant_ids[fingerprint].append(tenant_id)
    names = dict(Tenant.objects.filter(pk__in={t for ids in tenant_ids.values() for t in ids if t})
                 .values_list("pk", "name"))
    for group in groups:
        group.error = errors.get(group.fingerprint, "")
        group.tenants = sorted(names.get(t, "(system)") if t else "(system)" for t in tenant_ids[group.fingerprint])
    return groups


@dataclass
class TimelineEntry:
    at: datetime
    what: str
    detail: str = ""
    event: AuditEvent | None = None


def job_timeline(*, job: Job) -> list[TimelineEntry]:
    """A job's story in order: created, handed over, each attempt, staff actions, the end."""
    entries = [TimelineEntry(job.created_at, "created", f"from {job.get_source_display().lower()}"
                             + (f" by {job.enqueued_by}" if job.enqueued_by_id else ""))]
    for attempt in job.attempt_set.select_related("triggered_by").order_by("number"):
        who = f" by {attempt.triggered_by}" if attempt.triggered_by_id else ""
        entries.append(TimelineEntry(attempt.started_at, f"attempt {attempt.number} started",
                                     f"{attempt.get_trigger_display().lower()}{who} on {attempt.worker_name}"))
        if attempt.ended_at:
            detail = f"{attempt.error_type}: {attempt.error_message}" if attempt.error_type else ""
            entries.append(TimelineEntry(attempt.ended_at, f"attempt {attempt.number} {attempt.get_outcome_display()
                                                                                       .lower()}", detail[:300]))
    for event in audit_events_for_job(job=job):
        entries.append(TimelineEntry(event.created_at, f"{event.get_action_display().lower()} by {event.actor_name}",
                                     event.reason, event=event))
    if job.status == Status.RETRYING and job.run_at:
        entries.append(TimelineEntry(job.run_at, "next attempt due"))
    elif job.is_finished and job.finished_at:
        entries.append(TimelineEntry(job.finished_at, job.get_status_display().lower(), job.last_error[:300]))
    return sorted(entries, key=lambda entry: entry.at)


def audit_events_for_job(*, job: Job) -> QuerySet[AuditEvent]:
    """Staff actions that touched this job (the caller has already checked the user may see the job)."""
    touched = AuditEventJob.objects.filter(job_id=job.pk).values("event_id")
    return AuditEvent.objects.filter(pk__in=touched).order_by("created_at")


def audit_list_for_user(*, user) -> QuerySet[AuditEvent]:
    """Audit events a user may see: their tenants' and their own; superusers see all."""
    if user.is_superuser:
        return AuditEvent.objects.all()
    return AuditEvent.objects.filter(Q(tenant__in=tenant_list_for_user(user=user)) | Q(actor=user))
