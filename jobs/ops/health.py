"""What /readyz, the alert check and the admin's banner know about the system: counts and states, never
tenant data.

Every check is cheap on a big jobs table: counts stop at a cap (`count_upto`, so at most that many index
entries of the (status, updated_at) index are read), the oldest waiting job is one index seek per status,
the database part runs under a statement timeout and Redis is asked through a short-timeout probe.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from jobs.models import Job, Status
from jobs.ops import probes

OK, DEGRADED, DOWN, UNKNOWN = "ok", "degraded", "down", "unknown"
_RANK = {OK: 0, UNKNOWN: 1, DEGRADED: 1, DOWN: 2}

# Counts stop here (or just past a higher threshold): "more than 100000" is all a check needs to say.
COUNT_CAP = 100_000
# A failure rate over fewer finished jobs than this says little, so it never crosses its threshold.
FAILURE_RATE_MIN_JOBS = 20

# Checks with a threshold, and the setting that holds it.
THRESHOLDS = {
    "failures": "OPS_MAX_FAILED_PER_HOUR",
    "failure_rate": "OPS_MAX_FAILURE_RATE",
    "waiting": "OPS_MAX_WAITING",
    "delayed": "OPS_MAX_DELAYED",
    "active": "OPS_MAX_ACTIVE",
    "pending": "OPS_MAX_PENDING",
    "oldest_waiting": "OPS_MAX_WAITING_AGE_SECONDS",
}
DATABASE_CHECKS = ("waiting", "pending", "delayed", "active", "oldest_waiting", "failures", "failure_rate")
CHECKS = ("database", "redis", "workers", *DATABASE_CHECKS)
# Checks the alert check opens incidents for (the database and Redis being down stop it from running at all).
ALERTING = ("workers", *DATABASE_CHECKS)


@dataclass
class Check:
    name: str
    status: str
    reason: str
    value: float | None = None
    threshold: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def crossed(self) -> bool:
        return self.status in (DEGRADED, DOWN)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.value is not None:
            data["value"] = self.value
        if self.threshold is not None:
            data["threshold"] = self.threshold
        return data | self.detail


@dataclass
class Readiness:
    checks: dict[str, Check]
    checked_at: datetime

    @property
    def status(self) -> str:
        worst = max((_RANK[check.status] for check in self.checks.values()), default=0)
        return {0: OK, 1: DEGRADED, 2: DOWN}[worst]

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "checked_at": self.checked_at.isoformat(),
                "checks": {name: check.as_json() for name, check in self.checks.items()}}


def readiness(*, now: datetime | None = None) -> Readiness:
    """Every check, now. The database unreachable is `down`; Redis unreachable is `degraded` (the site
    works on, and new jobs wait as pending until it is back); a crossed threshold is `degraded`, or
    `down` for the checks named in OPS_DOWN_CHECKS."""
    now = now or timezone.now()
    checks = {"database": database_check()}
    redis = redis_check()
    checks["redis"] = redis
    if checks["database"].status == DOWN:
        for name in ("workers", *DATABASE_CHECKS):
            checks[name] = Check(name, UNKNOWN, "Not checked: the database is unreachable.")
        return Readiness(checks, now)
    try:
        with bounded_queries(settings.OPS_CHECK_TIMEOUT):
            checks["workers"] = workers_check(redis_reachable=redis.status == OK)
            checks.update(job_checks(now=now))
    except DatabaseError as exc:
        for name in ("workers", *DATABASE_CHECKS):
            checks.setdefault(name, Check(name, UNKNOWN, f"Could not be read in time ({type(exc).__name__})."))
    return Readiness(checks, now)


@contextmanager
def bounded_queries(seconds: float) -> Iterator[None]:
    """A read-only transaction whose statements PostgreSQL cancels after `seconds`."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
        yield


def database_check() -> Check:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return Check("database", DOWN, f"The database is unreachable ({type(exc).__name__}).")
    return Check("database", OK, "The database answers.")


def redis_check() -> Check:
    state = probes.redis_state()
    if state.reachable:
        return Check("redis", OK, "Redis answers.")
    return Check("redis", _severity("redis"), f"Redis is unreachable ({state.error}): the site works on and new "
                                              "jobs wait as pending until it is back.")


def workers_check(*, redis_reachable: bool) -> Check:
    """Live workers per queue; a queue with jobs queued in RQ and no worker listening is `degraded`."""
    if not redis_reachable:
        return Check("workers", UNKNOWN, "Not checked: Redis is unreachable.")
    try:
        live = probes.live_workers_by_queue()
    except RedisError as exc:
        return Check("workers", UNKNOWN, f"Not checked: Redis did not answer ({type(exc).__name__}).")
    queues = {name: live.by_queue.get(name, 0) for name in settings.RQ_QUEUES}
    unserved = [name for name, count in queues.items()
                if not count and Job.objects.filter(status=Status.QUEUED, queue=name).exists()]
    detail = {"live": live.total, "queues": queues}
    if unserved:
        names = ", ".join(unserved)
        return Check("workers", _severity("workers"), f"No live worker listens on {names}, where jobs are queued.",
                     value=len(unserved), detail=detail)
    return Check("workers", OK, f"{live.total} live worker(s); every queue with queued jobs has one.", detail=detail)


def job_checks(*, now: datetime) -> dict[str, Check]:
    jobs = Job.objects.all()
    checks = {
        "waiting": _count_check("waiting", jobs.filter(status__in=(Status.PENDING, Status.QUEUED)),
                                "job(s) waiting for a worker (pending or queued)"),
        "pending": _count_check("pending", jobs.filter(status=Status.PENDING),
                                "job(s) stored and waiting to be handed over to RQ"),
        "delayed": _count_check("delayed", jobs.filter(status__in=(Status.SCHEDULED, Status.RETRYING)),
                                "job(s) delayed (scheduled or retrying)"),
        "active": _count_check("active", jobs.filter(status=Status.RUNNING), "job(s) running"),
        "oldest_waiting": oldest_waiting_check(now=now),
    }
    hour_ago = now - timedelta(hours=1)
    failed = count_upto(jobs.filter(status=Status.FAILED, updated_at__gte=hour_ago), _cap("failures"))
    succeeded = count_upto(jobs.filter(status=Status.SUCCEEDED, updated_at__gte=hour_ago), COUNT_CAP)
    checks["failures"] = _threshold_check("failures", failed,
                                          f"{_more(failed, 'failures')} job(s) failed in the last hour")
    checks["failure_rate"] = failure_rate_check(failed=failed, succeeded=succeeded)
    return checks


def oldest_waiting_check(*, now: datetime) -> Check:
    """How long the longest-waiting pending or queued job has waited in that state (one index seek each)."""
    since = [Job.objects.filter(status=status).order_by("updated_at").values_list("updated_at", flat=True).first()
             for status in (Status.PENDING, Status.QUEUED)]
    oldest = min((moment for moment in since if moment is not None), default=None)
    if oldest is None:
        return _threshold_check("oldest_waiting", 0, "No job is waiting")
    age = max(0, int((now - oldest).total_seconds()))
    return _threshold_check("oldest_waiting", age, f"The oldest waiting job has waited {age} s")


def failure_rate_check(*, failed: int, succeeded: int) -> Check:
    finished = failed + succeeded
    rate = round(failed / finished, 4) if finished else 0.0
    threshold = float(getattr(settings, THRESHOLDS["failure_rate"]))
    reason = f"{rate:.1%} of {finished} job(s) finished in the last hour failed"
    if threshold and finished >= FAILURE_RATE_MIN_JOBS and rate > threshold:
        return Check("failure_rate", _severity("failure_rate"), f"{reason}; the threshold is {threshold:.1%}.",
                     value=rate, threshold=threshold)
    return Check("failure_rate", OK, reason + ".", value=rate, threshold=threshold or None)


def count_upto(queryset: QuerySet, limit: int) -> int:
    """How many rows match, counting no further than `limit`. The inner query selects only `status`, so
    PostgreSQL can count from the (status, updated_at) index without visiting the rows."""
    return queryset.order_by().values("status")[:limit].count()


def _count_check(name: str, queryset: QuerySet, what: str) -> Check:
    count = count_upto(queryset, _cap(name))
    return _threshold_check(name, count, f"{_more(count, name)} {what}")


def _threshold_check(name: str, value: float, reason: str) -> Check:
    threshold = getattr(settings, THRESHOLDS[name])
    if threshold and value > threshold:
        return Check(name, _severity(name), f"{reason}; the threshold is {threshold}.", value=value,
                     threshold=threshold)
    return Check(name, OK, reason + ".", value=value, threshold=threshold or None)


def _cap(name: str) -> int:
    return max(COUNT_CAP, int(getattr(settings, THRESHOLDS[name])) + 1)


def _more(count: int, name: str) -> str:
    return f"More than {count - 1}" if count >= _cap(name) else str(count)


def _severity(name: str) -> str:
    return DOWN if name in settings.OPS_DOWN_CHECKS else DEGRADED


def pending_handovers(*, tenant_ids: list[int] | None = None, limit: int) -> int:
    """Jobs stored `pending` (waiting to be handed to RQ), of these tenants only unless None, up to `limit`."""
    pending = Job.objects.filter(status=Status.PENDING)
    if tenant_ids is not None:
        pending = pending.filter(tenant_id__in=tenant_ids)
    return count_upto(pending, limit)
