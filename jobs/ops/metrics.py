"""Prometheus metrics, read from the database when scraped (so every web process answers alike), plus
django-rq's own queue and worker metrics.

Bounded on a big jobs table: unfinished jobs are few (they are counted whole); finished jobs, their
durations and attempts come from a recent window (OPS_METRICS_WINDOW_SECONDS) read through the
(status, updated_at) index, since a finished job's updated_at is when it finished and ending an attempt
always writes its job's updated_at. Tenant labels are the OPS_METRICS_TOP_TENANTS busiest tenants by
slug, "other" for the rest and "system" for jobs without a tenant.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, QuerySet, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from jobs.models import TERMINAL, UNFINISHED, Attempt, Job, Status
from jobs.ops import health, probes
from jobs.ops.models import Incident
from tenants.models import Tenant

PREFIX = "tracked_jobs"
OTHER, SYSTEM = "other", "system"
JOB_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
ATTEMPT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
ALL_STATUSES = tuple(Status.values)


class TrackedJobsCollector:
    """The engine's metrics, from the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        database_up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 when the database answered this scrape.")
        try:
            with health.bounded_queries(settings.OPS_METRICS_TIMEOUT):
                families = list(self._database_families(timezone.now()))
        except DatabaseError:
            families = []
        database_up.add_metric([], 1 if families else 0)
        yield database_up
        yield from families
        yield from self._redis_families()
        took = GaugeMetricFamily(f"{PREFIX}_scrape_duration_seconds", "Time this scrape spent reading the "
                                 "database and Redis for the tracked_jobs_* metrics.")
        took.add_metric([], time.monotonic() - started)
        yield took

    def _database_families(self, now: datetime) -> Iterator[Metric]:
        window = settings.OPS_METRICS_WINDOW_SECONDS
        start = now - timedelta(seconds=window)
        unfinished = _grouped(Job.objects.filter(status__in=UNFINISHED))
        finished = _grouped(Job.objects.filter(status__in=TERMINAL, updated_at__gte=start))
        tenant_label = _tenant_labels([unfinished, finished])

        yield _job_counts(f"{PREFIX}_unfinished", "Jobs not finished now (pending, scheduled, queued, running, "
                          "retrying), by queue, kind, status and tenant (the busiest tenants by slug, the rest "
                          "as \"other\", jobs without a tenant as \"system\").", unfinished, tenant_label)
        yield _job_counts(f"{PREFIX}_finished_in_window", f"Jobs that finished (succeeded, failed, cancelled) in "
                          f"the last {window} s, by queue, kind, status and tenant. A sliding window, not a "
                          "counter: it goes down as jobs leave the window, so read it as is, not with rate().",
                          finished, tenant_label)
        window_gauge = GaugeMetricFamily(f"{PREFIX}_metrics_window_seconds",
                                         "Length of the window of the *_in_window and duration metrics.")
        window_gauge.add_metric([], window)
        yield window_gauge

        pending = GaugeMetricFamily(f"{PREFIX}_pending_handover", "Jobs stored pending, waiting to be handed to "
                                    "RQ by the relay (Redis down, a tenant at its limit, a paused queue).",
                                    labels=["queue"])
        per_queue: Counter = Counter()
        for (queue, _kind, status, _tenant), count in unfinished.items():
            if status == Status.PENDING:
                per_queue[queue] += count
        for queue in _queues(per_queue):
            pending.add_metric([queue], per_queue.get(queue, 0))
        yield pending
        yield _oldest_waiting(now)
        yield from _job_durations(start, window)
        yield from _attempts(start, window)
        incidents = GaugeMetricFamily(f"{PREFIX}_open_incidents", "Open incidents of the alert check, by check.",
                                      labels=["check"])
        for name, count in Incident.objects.filter(resolved_at__isnull=True).values_list("check_name").annotate(
                n=Count("id")).order_by():
            incidents.add_metric([name], count)
        yield incidents

    def _redis_families(self) -> Iterator[Metric]:
        state = probes.redis_state()
        up = GaugeMetricFamily(f"{PREFIX}_redis_up", "1 when Redis answered this scrape's PING.")
        up.add_metric([], 1 if state.reachable else 0)
        yield up
        if not state.reachable:
            return
        try:
            live = probes.live_workers_by_queue()
        except RedisError:
            return
        workers = GaugeMetricFamily(f"{PREFIX}_workers", "Live RQ workers listening on each queue (a worker on "
                                    "several queues counts for each), from RQ's worker registry.", labels=["queue"])
        for queue in _queues(live.by_queue):
            workers.add_metric([queue], live.by_queue.get(queue, 0))
        yield workers
        total = GaugeMetricFamily(f"{PREFIX}_workers_live", "Live RQ workers, each counted once.")
        total.add_metric([], live.total)
        yield total


class DjangoRQCollector:
    """django-rq's own collector (workers, their job counts, RQ's registries per queue), skipped when
    Redis is unreachable instead of failing the whole scrape."""

    def collect(self) -> Iterator[Metric]:
        from django_rq.contrib.prometheus import RQCollector

        if not probes.redis_state_cached().reachable:
            return
        try:
            families = list(RQCollector().collect())
        except RedisError:
            return
        yield from families


def _grouped(queryset: QuerySet) -> Counter:
    rows = queryset.values_list("queue", "kind", "status", "tenant_id").annotate(n=Count("id")).order_by()
    return Counter({(queue, kind, status, tenant): n for queue, kind, status, tenant, n in rows})


def _tenant_labels(groups: Iterable[Counter]) -> dict[int | None, str]:
    volume: Counter = Counter()
    for group in groups:
        for (_queue, _kind, _status, tenant_id), count in group.items():
            if tenant_id is not None:
                volume[tenant_id] += count
    top = [tenant_id for tenant_id, _ in sorted(volume.items(), key=lambda item: (-item[1], item[0]))
           [: settings.OPS_METRICS_TOP_TENANTS]]
    labels: dict[int | None, str] = defaultdict(lambda: OTHER)
    labels.update(Tenant.objects.filter(pk__in=top).values_list("pk", "slug"))
    labels[None] = SYSTEM
    return labels


def _job_counts(name: str, documentation: str, groups: Counter, tenant_label: dict) -> GaugeMetricFamily:
    merged: Counter = Counter()
    for (queue, kind, status, tenant_id), count in groups.items():
        merged[(queue, kind, status, tenant_label[tenant_id])] += count
    family = GaugeMetricFamily(name, documentation, labels=["queue", "kind", "status", "tenant"])
    for labels, count in sorted(merged.items()):
        family.add_metric(list(labels), count)
    return family


def _oldest_waiting(now: datetime) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_oldest_waiting_seconds", "Per queue, how long its longest-waiting "
                               "pending or queued job has waited in that state (0: none waiting).", labels=["queue"])
    oldest = dict(Job.objects.filter(status__in=(Status.PENDING, Status.QUEUED)).values_list("queue")
                  .annotate(oldest=Min("updated_at")).order_by())
    for queue in _queues(oldest):
        since = oldest.get(queue)
        family.add_metric([queue], max(0.0, (now - since).total_seconds()) if since else 0.0)
    return family


def _job_durations(start: datetime, window: int) -> Iterator[Metric]:
    jobs = (Job.objects.filter(status__in=(Status.SUCCEEDED, Status.FAILED), updated_at__gte=start,
                               finished_at__isnull=False)
            .alias(duration=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField())))
    rows = _bucketed(jobs, ("queue", "status"), JOB_BUCKETS)
    family = GaugeHistogramMetricFamily(
        f"{PREFIX}_job_duration_seconds", f"Time from enqueue to finish (waits and retries included) of the jobs "
        f"that succeeded or failed in the last {window} s, by queue and status. A gauge histogram over a sliding "
        "window, read at scrape time: use histogram_quantile() on its buckets as they are, not on rate().",
        labels=["queue", "status"])
    for labels, buckets, total in rows:
        family.add_metric(labels, buckets, total)
    yield family


def _attempts(start: datetime, window: int) -> Iterator[Metric]:
    # Ending an attempt writes its job's updated_at, so the attempts of the window are among the attempts
    # of jobs updated since its start: the (status, updated_at) index finds those jobs, (job, number) their
    # attempts.
    attempts = (Attempt.objects.filter(job__status__in=ALL_STATUSES, job__updated_at__gte=start, ended_at__gte=start)
                .alias(duration=ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())))
    rows = _bucketed(attempts, ("job__queue", "outcome"), ATTEMPT_BUCKETS)
    durations = GaugeHistogramMetricFamily(
        f"{PREFIX}_attempt_duration_seconds", f"Run time of the attempts that ended in the last {window} s, by queue "
        "and outcome. A gauge histogram over a sliding window, read at scrape time: use histogram_quantile() on its "
        "buckets as they are, not on rate().", labels=["queue", "outcome"])
    counts = GaugeMetricFamily(f"{PREFIX}_attempts_in_window", f"Attempts that ended in the last {window} s, by "
                               "queue and outcome (failed, timed_out and abandoned are failures; a sliding window, "
                               "not a counter).", labels=["queue", "outcome"])
    for labels, buckets, total in rows:
        durations.add_metric(labels, buckets, total)
        counts.add_metric(labels, buckets[-1][1])
    yield durations
    yield counts


def _bucketed(queryset: QuerySet, group_by: tuple[str, ...], bounds: tuple[float, ...]):
    """Per group: ([label values], cumulative [(le, count)] ending with +Inf, sum of seconds), in one query."""
    counts = {f"le_{index}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
              for index, bound in enumerate(bounds)}
    rows = (queryset.values(*group_by).annotate(total=Count("pk"), seconds=Sum("duration"), **counts)
            .order_by(*group_by))
    for row in rows:
        buckets = [(_le(bound), row[f"le_{index}"]) for index, bound in enumerate(bounds)]
        buckets.append(("+Inf", row["total"]))
        seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
        yield [str(row[name] or "") for name in group_by], buckets, seconds


def _le(bound: float) -> str:
    return str(float(bound))


def _queues(seen: Iterable[str]) -> list[str]:
    return sorted(set(settings.RQ_QUEUES) | set(seen))


def metrics_registry() -> CollectorRegistry:
    """A registry of our collectors only: per-process Python metrics would differ between web processes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrackedJobsCollector())
    registry.register(DjangoRQCollector())
    return registry


REGISTRY = metrics_registry()
