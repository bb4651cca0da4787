"""Everything that talks to Redis through RQ. The rest of the engine sees job ids, never RQ objects.

RQ carries one thing per job: the Job row's id, as the only argument of `jobs.tasks.run_job`, serialised
as JSON. Workers resolve no other function name found in Redis.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import django_rq
from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError
from rq.command import send_shutdown_command, send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import Worker

from jobs.models import DEFAULT_PRIORITY

logger = logging.getLogger(__name__)

ENTRY_POINT = "jobs.tasks.run_job"

# Failures that mean "Redis is not reachable right now"; callers keep the row in the database.
TransportError = RedisError


class ForbiddenJobFunction(Exception):
    """A job in Redis names a function outside the allowlist; it is refused, never imported."""




class TrackedRQJob(RQJob):
    """The engine's RQ job class: always JSON, whoever creates or fetches it (RQ, rq-scheduler, django-rq).

    What any RQ job may do once fetched (which function it resolves; no callbacks, no webhooks) is
    settled for every job class by `jobs.rq_lockdown`.
    """

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer=None) -> None:
        super().__init__(id, connection=connection, serializer=JSONSerializer)


def refusal_reason(job: RQJob) -> str | None:
    """Why a job taken from Redis is not one the engine handed over, or None when it is.

    The engine's jobs (`_persist`) call the entry point with their own id and nothing else, and set
    none of RQ's other powers: callbacks, webhooks, dependencies, retries, repeats, groups, rate
    limits, results kept forever. Anything else was written into Redis by someone else.
    """
    try:
        if job.func_name != ENTRY_POINT:
            return f"its function {job.func_name!r} is not the engine's entry point"
        if job.instance is not None or list(job.args) != [job.id] or job.kwargs:
            return "its arguments are not its own id"
        callbacks = [name for name in (job._success_callback_name, job._failure_callback_name,
                                       job._stopped_callback_name) if name]
        extras = {
            f"callbacks {callbacks}": callbacks,
            "webhooks": job.webhooks,
            "dependencies": job._dependency_ids,
            "RQ retries": job.retries_left or job.retry_intervals,
            "repeats": job.repeats_left or job.repeat_intervals,
            "a group": job.group_id,
            "a rate limit": job.has_rate_limit,
            "results kept forever": job.result_ttl is None or job.result_ttl < 0 or (job.failure_ttl or 0) < 0,
            "meta the engine did not write": set(job.meta) - {"kind", "tenant"},
        }
    except Exception as exc:  # an unreadable hash (a pickle, a malformed field) is refused like the rest
        return f"it cannot be read as JSON ({type(exc).__name__})"
    carried = [name for name, present in extras.items() if present]
    return f"it carries {', '.join(carried)}" if carried else None


def refuse(job_id: str, queue: Queue, reason: str) -> None:
    """Drop a job a worker took from Redis without running anything of it: no function, no callback,
    no webhook, no failed-registry entry. If it was a tampered copy of a real job, the reconciler
    finds that job missing from Redis and hands it over again, as the engine made it."""
    logger.error("Refused RQ job %s from queue %s: %s; removed from Redis", job_id, queue.name, reason)
    with queue.connection.pipeline(transaction=False) as pipe:
        _forget(pipe, queue, job_id)
        pipe.execute()


@dataclass(frozen=True)
class Handover:
    """What the relay gives RQ for one job."""

    job_id: str
    queue: str
    kind: str
    tenant: str
    timeout: int
    fresh: bool  # False when an earlier attempt may have left an RQ job under the same id
    # Above the default, pushed to the front of its RQ queue, ahead of every job of default priority waiting.
    priority: int = DEFAULT_PRIORITY


_queues: dict[tuple[str, str], Queue] = {}


def get_queue(name: str) -> Queue:
    """A cached RQ queue (JSON serializer, our job class); cached because each new Queue asks Redis INFO."""
    key = (name, settings.RQ_QUEUES[name].get("URL", ""))
    queue = _queues.get(key)
    if queue is None:
        queue = django_rq.get_queue(name, serializer=JSONSerializer, job_class=TrackedRQJob)
        _queues[key] = queue
    return queue


def get_connection() -> Redis:
    return get_queue("default").connection


def push(handovers: Iterable[Handover]) -> None:
    """Hand jobs to RQ in one round trip. Raises `TransportError` when Redis is unreachable."""
    by_queue: dict[str, list[Handover]] = defaultdict(list)
    for handover in handovers:
        by_queue[handover.queue].append(handover)
    if not by_queue:
        return
    connection = get_connection()
    stale_executions = _stale_executions(by_queue)
    with connection.pipeline() as pipe:
        for queue_name, items in by_queue.items():
            queue = get_queue(queue_name)
            for item in items:
                if not item.fresh:
                    _forget(pipe, queue, item.job_id)
            if stale_executions.get(queue_name):
                pipe.zrem(queue.started_job_registry.key, *stale_executions[queue_name])
            pipe.sadd(queue.redis_queues_keys, queue.key)
            # RQ's list is first in, first out; a job above the default priority goes to its front. Those are
            # pushed in reverse (each push goes before the last), so the highest, then the oldest, is first.
            for item in items:
                if item.priority <= DEFAULT_PRIORITY:
                    _persist(pipe, queue, item)
            urgent = sorted((item for item in items if item.priority > DEFAULT_PRIORITY), key=lambda i: -i.priority)
            for item in reversed(urgent):
                _persist(pipe, queue, item, at_front=True)
        pipe.execute()


def _persist(pipe, queue: Queue, item: Handover, *, at_front: bool = False) -> None:
    """RQ's own enqueue of one job, minus a status write its `save` repeats (a third of the commands)."""
    job = queue.create_job(
        ENTRY_POINT,
        args=(item.job_id,),
        job_id=item.job_id,
        timeout=item.timeout,
        description=f"{item.kind} [{item.tenant}]",
        meta={"kind": item.kind, "tenant": item.tenant},
        result_ttl=settings.JOBS_RQ_RESULT_TTL,
        failure_ttl=settings.JOBS_RQ_FAILURE_TTL,
        status=JobStatus.QUEUED,
    )
    queue._prepare_for_queue(job)
    job.save(pipeline=pipe)
    queue.push_job_id(job.id, pipeline=pipe, at_front=at_front)


def _stale_executions(by_queue: dict[str, list[Handover]]) -> dict[str, list[bytes]]:
    """Started-registry entries an abandoned attempt left behind; RQ would later fail the new run."""
    stale: dict[str, list[bytes]] = {}
    for queue_name, items in by_queue.items():
        retried = {item.job_id.encode() for item in items if not item.fresh}
        if not retried:
            continue
        queue = get_queue(queue_name)
        members = queue.connection.zrange(queue.started_job_registry.key, 0, -1)
        stale[queue_name] = [m for m in members if m.split(b":", 1)[0] in retried]
    return stale


def _forget(pipe, queue: Queue, job_id: str) -> None:
    """Drop what an earlier attempt left in Redis under this id, so the new hand-over starts clean."""
    pipe.delete(RQJob.key_for(job_id))
    for registry in (queue.failed_job_registry, queue.finished_job_registry, queue.deferred_job_registry,
                     queue.scheduled_job_registry):
        pipe.zrem(registry.key, job_id)
    pipe.lrem(queue.key, 0, job_id)
    pipe.lrem(queue.intermediate_queue_key, 0, job_id)


def remove(jobs: Iterable[tuple[str, str]]) -> None:
    """Take jobs, given as (job id, queue name), out of RQ in one round trip (cancel, pause, delete).

    Missing keys are fine: the database decides, and a worker that still pops one finds nothing to claim.
    """
    jobs = list(jobs)
    if not jobs:
        return
    with get_connection().pipeline(transaction=False) as pipe:
        for job_id, queue_name in jobs:
            if queue_name in settings.RQ_QUEUES:
                _forget(pipe, get_queue(queue_name), job_id)
        pipe.execute()


def missing(job_ids: list[str]) -> set[str]:
    """Ids (of jobs queued in the database for a while) that no worker will run as things stand: the
    RQ job hash is gone or left finished by an earlier attempt, or a worker took the id off the list
    and died before starting it (the id is then on no queue list or started registry, or, for a
    single-queue worker, stuck in the intermediate list). RQ itself would not notice in time."""
    if not job_ids:
        return set()
    connection = get_connection()
    queues = [get_queue(name) for name in settings.RQ_QUEUES]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(RQJob.key_for(job_id), "status")
        for queue in queues:
            pipe.lrange(queue.key, 0, -1)
            pipe.lrange(queue.intermediate_queue_key, 0, -1)
            pipe.zrange(queue.started_job_registry.key, 0, -1)
        replies = pipe.execute()
    statuses, lists = replies[: len(job_ids)], replies[len(job_ids):]
    # Per queue: its list, its intermediate list, its started registry (members "id:execution").
    placed = {raw.decode() for members in lists[0::3] for raw in members}
    placed |= {raw.split(b":", 1)[0].decode() for members in lists[2::3] for raw in members}
    stranded = {raw.decode() for members in lists[1::3] for raw in members}
    waiting_in_rq = {b"queued", b"started", b"deferred", b"scheduled"}
    return {job_id for job_id, status in zip(job_ids, statuses, strict=True)
            if status not in waiting_in_rq or job_id in stranded or job_id not in placed}


def drop_failed_copy(job_id: str, queue_name: str) -> None:
    """Forget RQ's failed copy of an attempt the database will run again (retrying, snoozed) or ended
    otherwise (stopped: cancelled). RQ's failed registry then holds just the jobs that failed for good,
    as the record does, and the dashboard's requeue means a retry."""
    if queue_name in settings.RQ_QUEUES:
        queue = get_queue(queue_name)
        with queue.connection.pipeline(transaction=False) as pipe:
            pipe.zrem(queue.failed_job_registry.key, job_id)
            pipe.delete(RQJob.key_for(job_id))
            pipe.execute()


def holds(job_id: str) -> bool:
    """Whether Redis has an RQ job under this id now (the django-rq dashboard can show it)."""
    return bool(get_connection().exists(RQJob.key_for(job_id)))


def stop(job_id: str) -> bool:
    """Ask the worker running this job to stop it. False when RQ knows no running job by that id."""
    try:
        send_stop_job_command(get_connection(), job_id, serializer=JSONSerializer)
    except (NoSuchJobError, InvalidJobOperation):
        return False
    return True


def acquire_lock(name: str, *, ttl: float) -> bool:
    """True if this process took the named lock; it expires by itself after `ttl` seconds."""
    return bool(get_connection().set(name, os.getpid(), nx=True, px=max(1, int(ttl * 1000))))


# --- rq-scheduler entries for cron schedules ---------------------------------------------------------
# One entry per enabled schedule, under a stable id, set to the schedule's next fire time. When it comes
# due the scheduler process fires the schedule from the database (jobs.scheduler_process); no worker ever runs
# the entry, so its function is not on the workers' allowlist.

SCHEDULE_ENTRY_FUNCTION = "jobs.tasks.fire_schedule"
SCHEDULE_ENTRY_PREFIX = "schedule-"


def schedule_entry_id(schedule_id: int) -> str:
    return f"{SCHEDULE_ENTRY_PREFIX}{schedule_id}"


def schedule_of_entry(entry_id: str) -> int | None:
    """The schedule an rq-scheduler entry stands for, or None for any other scheduled RQ job."""
    head, _, tail = entry_id.partition(SCHEDULE_ENTRY_PREFIX)
    return int(tail) if not head and tail.isdigit() else None


def get_scheduler():
    queue = get_queue("default")
    return django_rq.get_scheduler("default", queue=queue, connection=queue.connection)


def schedule_entries() -> dict[int, float]:
    """The schedules rq-scheduler holds: schedule id -> wake-up time (unix seconds)."""
    scheduler = get_scheduler()
    entries = scheduler.connection.zrange(scheduler.scheduled_jobs_key, 0, -1, withscores=True)
    found = {}
    for raw, score in entries:
        schedule_id = schedule_of_entry(raw.decode())
        if schedule_id is not None:
            found[schedule_id] = score
    return found


def schedule_entries_set(wake_ups: dict[int, datetime]) -> None:
    """Register (or move) each schedule's entry; the stable id makes registering twice a no-op."""
    if not wake_ups:
        return
    scheduler = get_scheduler()
    with scheduler.connection.pipeline() as pipe:
        for schedule_id in wake_ups:
            pipe.exists(RQJob.key_for(schedule_entry_id(schedule_id)))
        present = pipe.execute()
    for (schedule_id, wake_up), exists in zip(wake_ups.items(), present, strict=True):
        entry_id = schedule_entry_id(schedule_id)
        if exists:
            scheduler.connection.zadd(scheduler.scheduled_jobs_key, {entry_id: wake_up.timestamp()})
        else:
            scheduler.schedule(wake_up, SCHEDULE_ENTRY_FUNCTION, args=[schedule_id], id=entry_id,
                               description=f"cron schedule {schedule_id}", result_ttl=0)


def schedule_entries_due() -> list[str]:
    """Ids of the rq-scheduler entries whose time has come, read without fetching the entries."""
    scheduler = get_scheduler()
    return [raw.decode() for raw in scheduler.connection.zrangebyscore(scheduler.scheduled_jobs_key, 0, time.time())]


def schedule_entries_remove(schedule_ids: Iterable[int]) -> None:
    schedule_entries_drop([schedule_entry_id(schedule_id) for schedule_id in schedule_ids])


def schedule_entries_drop(entry_ids: list[str]) -> None:
    if not entry_ids:
        return
    scheduler = get_scheduler()
    with scheduler.connection.pipeline() as pipe:
        pipe.zrem(scheduler.scheduled_jobs_key, *entry_ids)
        pipe.delete(*(RQJob.key_for(entry_id) for entry_id in entry_ids))
        pipe.execute()


SCHEDULERS_KEY = "jobs:schedulers"


def scheduler_beat(name: str, *, alive: bool = True) -> None:
    """A scheduler process says it is alive (or, stopping, that it is gone): one hash field each."""
    connection = get_connection()
    if alive:
        connection.hset(SCHEDULERS_KEY, name, time.time())
    else:
        connection.hdel(SCHEDULERS_KEY, name)


def schedulers_alive(*, within: float | None = None) -> list[tuple[str, float]]:
    """(name, seconds since its last beat) of the scheduler processes that beat lately; the others are
    forgotten. A scheduler beats every tick, so `within` defaults to a few ticks."""
    within = within if within is not None else settings.JOBS_TICK_SECONDS * 3 + 10
    now = time.time()
    beats = {name.decode(): now - float(at) for name, at in get_connection().hgetall(SCHEDULERS_KEY).items()}
    gone = [name for name, age in beats.items() if age > within]
    if gone:
        get_connection().hdel(SCHEDULERS_KEY, *gone)
    return sorted((name, age) for name, age in beats.items() if age <= within)


def rate_take(key: str, wanted: int, limit: int, *, second: int | None = None) -> int:
    """Take up to `wanted` of `second`'s (this second's) `limit` hand-overs counted under `key`; how many
    were granted. A caller that may give some back passes the second to both calls."""
    second = int(time.time()) if second is None else second
    name = f"jobs:rate:{key}:{second}"
    with get_connection().pipeline() as pipe:
        pipe.incrby(name, wanted)
        pipe.expire(name, 5)
        after = pipe.execute()[0]
    over = max(0, min(wanted, after - limit))
    if over:
        get_connection().decrby(name, over)
    return wanted - over


def rate_return(key: str, unused: int, *, second: int) -> None:
    """Give back hand-overs taken with `rate_take` for `second` but not used: to that second's count, not
    the next one's (which they would push over its limit)."""
    if unused > 0:
        get_connection().decrby(f"jobs:rate:{key}:{second}", unused)


@dataclass(frozen=True)
class WorkerInfo:
    """A live RQ worker as it registered itself in Redis (plain text fields, read as text)."""
    name: str
    hostname: str
    pid: int | None
    queues: tuple[str, ...]
    state: str
    born: datetime | None
    last_heartbeat: datetime | None
    succeeded: int
    failed: int


def workers_list() -> list[WorkerInfo]:
    """Every registered worker, by host and name. Raises `TransportError` when Redis is unreachable."""
    workers = [WorkerInfo(name=w.name, hostname=w.hostname or "", pid=w.pid, queues=tuple(w.queue_names()),
                          state=w.get_state(), born=w.birth_date, last_heartbeat=w.last_heartbeat,
                          succeeded=w.successful_job_count, failed=w.failed_job_count)
               for w in Worker.all(connection=get_connection())]
    return sorted(workers, key=lambda w: (w.hostname, w.name))


def worker_stop(name: str) -> bool:
    """Ask a registered worker to stop after its current job (RQ's shutdown command); False if no worker
    of that name is registered."""
    connection = get_connection()
    if name not in {w.name for w in Worker.all(connection=connection)}:
        return False
    send_shutdown_command(connection, name)
    return True


def workers_by_queue() -> dict[str, int]:
    """How many live RQ workers listen on each queue (a worker on several queues counts for each)."""
    counts: dict[str, int] = defaultdict(int)
    for worker in Worker.all(connection=get_connection()):
        for name in worker.queue_names():
            counts[name] += 1
    return dict(counts)
