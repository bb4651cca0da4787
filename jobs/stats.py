"""Throughput, failures and latency for the staff dashboard, over the last hour, 24 hours, 7 and 30 days.

A job counts once it has finished (succeeded or failed), at its finish time. Its wait runs from when it
was due (made, or its `run_at`) to the start of its last attempt, held time included; its run time is that
attempt's start to the job's finish. Latencies are kept as counts per bucket (LATENCY_EDGES), so figures
over any span add up, and a percentile reads "at most 250 ms": the upper edge of the bucket it falls in.

Days before today are read from DailyStat, which `stats_summarize` fills once a day is over (a system
schedule runs it hourly); today, and any day not summarized yet, are read from the jobs themselves, through
the status/updated_at index. All days are UTC days.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Coalesce, Greatest, TruncDate, TruncHour, TruncMinute
from django.utils import timezone

from jobs.models import DailyStat, Job, StatDay, Status
from tenants.models import Role
from tenants.selectors import tenant_ids_with_role

SUMMARIZE_KIND = "maintenance.stats_summarize"
SUMMARIZE_SCHEDULE_NAME = "Dashboard figures"

# Seconds: a job falls in the first bucket whose edge is at least its latency, or in the last, open one.
LATENCY_EDGES = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
BUCKETS = len(LATENCY_EDGES) + 1
SUMMARIZED_DAYS = 31  # days back that stats_summarize keeps summarized (the longest range and one more)

FINISHED = (Status.SUCCEEDED, Status.FAILED)
_WAIT = ExpressionWrapper(F("started_at") - Greatest("created_at", Coalesce("run_at", "created_at")),
                          output_field=DurationField())
_RUN = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


@dataclass
class Figures:
    succeeded: int = 0
    failed: int = 0
    wait: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    run: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None

    def add(self, succeeded: int, failed: int, wait: list[int], run: list[int]) -> None:
        self.succeeded += succeeded
        self.failed += failed
        if len(wait) == BUCKETS and len(run) == BUCKETS:
            self.wait = list(map(int.__add__, self.wait, wait))
            self.run = list(map(int.__add__, self.run, run))
            return
        for mine, theirs in ((self.wait, wait), (self.run, run)):  # a summary made with other buckets
            for index, count in enumerate(theirs[:BUCKETS]):
                mine[index] += count

    def percentile(self, which: str, q: float) -> float | None:
        """The upper edge (seconds) of the bucket holding the q-th fraction of jobs; inf past the last
        edge, None without jobs."""
        counts = getattr(self, which)
        total = sum(counts)
        if not total:
            return None
        rank, seen = math.ceil(q * total), 0
        for index, count in enumerate(counts):
            seen += count
            if seen >= rank:
                return LATENCY_EDGES[index] if index < len(LATENCY_EDGES) else math.inf
        return math.inf


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    step: timedelta  # the chart's bar

    def start(self, now: datetime) -> datetime:
        if self.step < timedelta(days=1):
            return _floor(now, self.step) + self.step - self.span
        return datetime.combine(now.date(), time(), UTC) - self.span + self.step  # whole days, today the last


RANGES = {r.key: r for r in (
    Range("1h", "1 hour", timedelta(hours=1), timedelta(minutes=5)),
    Range("24h", "24 hours", timedelta(hours=24), timedelta(hours=1)),
    Range("7d", "7 days", timedelta(days=7), timedelta(days=1)),
    Range("30d", "30 days", timedelta(days=30), timedelta(days=1)),
)}


@dataclass
class Bar:
    start: datetime
    succeeded: int = 0
    failed: int = 0


@dataclass
class Dashboard:
    range: Range
    start: datetime
    total: Figures
    by_kind: list[tuple[str, Figures]]
    bars: list[Bar]


def dashboard_figures(*, user, range_key: str = "24h", now: datetime | None = None) -> Dashboard:
    """What the user's tenants (all, for superusers) finished over the range: totals, per kind, per bar."""
    tenant_ids = None if user.is_superuser else list(tenant_ids_with_role(user=user, role=Role.VIEWER))
    return finished_figures(tenant_ids=tenant_ids, range_key=range_key, now=now)


def finished_figures(*, tenant_ids: list[int] | None, range_key: str = "24h", now: datetime | None = None,
                     ) -> Dashboard:
    """What these tenants (None: all, system jobs included) finished over the range: totals, per kind, per bar."""
    spec = RANGES.get(range_key) or RANGES["24h"]
    now = now or timezone.now()
    start = spec.start(now)
    by_kind: dict[str, Figures] = defaultdict(Figures)
    bars = {start + spec.step * i: Bar(start + spec.step * i) for i in range(round(spec.span / spec.step))}

    def count(bar_start: datetime, kind: str, succeeded: int, failed: int, wait: list[int], run: list[int]) -> None:
        by_kind[kind].add(succeeded, failed, wait, run)
        bar = bars.get(_floor(bar_start, spec.step))
        if bar is not None:
            bar.succeeded += succeeded
            bar.failed += failed

    live_from = start
    if spec.step >= timedelta(days=1):
        days = [start.date() + timedelta(days=i) for i in range(len(bars))]
        summarized = set(StatDay.objects.filter(day__in=days[:-1]).values_list("day", flat=True))
        # Summarized days up to the first that is not (today, usually); from there on, the jobs themselves.
        first_live = next(day for day in days if day not in summarized)
        stats = DailyStat.objects.filter(day__in=[day for day in days if day < first_live])
        if tenant_ids is not None:
            stats = stats.filter(tenant_id__in=tenant_ids)
        # Rows, not models: a month of a big platform's (a row per day, tenant and kind) is thousands of them.
        for day, kind, succeeded, failed, wait, run in stats.values_list("day", "kind", "succeeded", "failed",
                                                                          "wait", "run").iterator(chunk_size=5000):
            by_kind[kind].add(succeeded, failed, wait, run)
            bar = bars[datetime.combine(day, time(), UTC)]
            bar.succeeded += succeeded
            bar.failed += failed
        live_from = datetime.combine(first_live, time(), UTC)
    scope = Job.objects.all() if tenant_ids is None else Job.objects.filter(tenant_id__in=tenant_ids)
    trunc = TruncMinute if spec.step < timedelta(hours=1) else TruncHour if spec.step < timedelta(days=1) else TruncDate
    for row in _figures(_finished_between(scope, live_from, now), "kind", bar=trunc("finished_at", tzinfo=UTC)):
        bar_start = row["bar"] if isinstance(row["bar"], datetime) else datetime.combine(row["bar"], time(), UTC)
        count(bar_start, row["kind"], row["succeeded"], row["failed"], row["wait"], row["run"])
    total = Figures()
    for figures in by_kind.values():
        total.add(figures.succeeded, figures.failed, figures.wait, figures.run)
    return Dashboard(range=spec, start=start, total=total, by_kind=sorted(by_kind.items()), bars=list(bars.values()))


def stats_summarize(*, now: datetime | None = None) -> int:
    """Summarize every finished day of the last SUMMARIZED_DAYS not summarized yet; returns how many days.

    Idempotent and safe to run twice at once: a day's rows and its StatDay are written in one
    transaction, and the second writer of a StatDay fails and writes nothing."""
    today = (now or timezone.now()).astimezone(UTC).date()
    wanted = {today - timedelta(days=i) for i in range(1, SUMMARIZED_DAYS + 1)}
    missing = sorted(wanted - set(StatDay.objects.filter(day__in=wanted).values_list("day", flat=True)))
    if not missing:
        return 0
    start, end = (datetime.combine(day, time(), UTC) for day in (missing[0], today))
    rows = _figures(_finished_between(Job.objects.all(), start, end),
                    "tenant_id", "kind", day=TruncDate("finished_at", tzinfo=UTC))
    stats = [DailyStat(day=row["day"], tenant_id=row["tenant_id"], kind=row["kind"], succeeded=row["succeeded"],
                       failed=row["failed"], wait=row["wait"], run=row["run"])
             for row in rows if row["day"] in missing]
    try:
        with transaction.atomic():
            StatDay.objects.bulk_create([StatDay(day=day) for day in missing])
            DailyStat.objects.bulk_create(stats, batch_size=1000)
    except IntegrityError:
        return 0  # another pass summarized them meanwhile
    return len(missing)


def _finished_between(jobs: QuerySet[Job], start: datetime, end: datetime) -> QuerySet[Job]:
    # A job's updated_at is never before its finish: the bound lets the status/updated_at index find them.
    return jobs.filter(status__in=FINISHED, updated_at__gte=start, finished_at__gte=start, finished_at__lt=end)


def _figures(jobs: QuerySet[Job], *fields: str, **expressions) -> list[dict]:
    """One row per group: succeeded, failed, and wait and run as counts per latency bucket."""
    aggregates = {"succeeded": Count("id", filter=Q(status=Status.SUCCEEDED)),
                  "failed": Count("id", filter=Q(status=Status.FAILED))}
    for name in ("wait", "run"):
        aggregates[f"{name}_all"] = Count("id", filter=Q(**{f"{name}__isnull": False}))
        for index, edge in enumerate(LATENCY_EDGES):
            aggregates[f"{name}_{index}"] = Count("id", filter=Q(**{f"{name}__lte": timedelta(seconds=edge)}))
    rows = jobs.annotate(wait=_WAIT, run=_RUN).values(*fields, **expressions).annotate(**aggregates).order_by()
    result = []
    for row in rows:
        entry = {key: row[key] for key in (*fields, *expressions, "succeeded", "failed")}
        for name in ("wait", "run"):
            cumulative = [row[f"{name}_{index}"] for index in range(len(LATENCY_EDGES))] + [row[f"{name}_all"]]
            entry[name] = [cumulative[0], *(b - a for a, b in zip(cumulative, cumulative[1:], strict=False))]
        result.append(entry)
    return result


def _floor(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(UTC)
    if step >= timedelta(days=1):
        return datetime.combine(moment.date(), time(), UTC)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // step * step


def format_seconds(value: float | None) -> str:
    """A percentile as the dashboard prints it: "≤ 250 ms", "≤ 2.5 s", "> 1 h", or "-"."""
    if value is None:
        return "-"
    if value == math.inf:
        return f"> {format_seconds(LATENCY_EDGES[-1])[2:]}"
    if value < 1:
        return f"≤ {value * 1000:g} ms"
    if value < 60:
        return f"≤ {value:g} s"
    if value < 3600:
        return f"≤ {value / 60:g} min"
    return f"≤ {value / 3600:g} h"

