"""The engine's hottest database work as single, prepared SQL statements on PostgreSQL.

- `claim` and `finish`: the two writes every attempt makes (job `queued -> running` plus the new
  Attempt row; the Attempt's outcome plus the job's next state), each one round trip and one commit
  instead of a transaction of several ORM statements: at worker speeds most of the mirror's cost;
- `insert_jobs`: storing new jobs, one prepared INSERT or COPY for thousands;
- `tenant_state` and `refill_pick`: the relay's look at a tenant and its pick of held jobs to hand over.

Other databases use the ORM versions in `jobs.runtime`, `jobs.services` and `jobs.relay`, which behave
the same.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from typing import Any

from django.db import connection
from django.db.models import JSONField
import psycopg
from psycopg.types.json import Jsonb

from jobs.models import ALLOWED_FROM, Attempt, Job
from tenants.models import Tenant

JOB_COLUMNS = [f.column for f in Job._meta.concrete_fields]
TENANT_COLUMNS = [f.column for f in Tenant._meta.concrete_fields]
JOB_ATTNAMES = [f.attname for f in Job._meta.concrete_fields]
TENANT_ATTNAMES = [f.attname for f in Tenant._meta.concrete_fields]


def supported() -> bool:
    return connection.vendor == "postgresql"


CLAIM_SQL = f"""
WITH claimed AS (
    UPDATE jobs_job
    SET status = 'running', attempts = attempts + 1, started_at = now(), updated_at = now(),
        progress = 0, progress_message = ''
    WHERE id = %(id)s AND status = 'queued'
      AND NOT EXISTS (SELECT 1 FROM jobs_queuestate paused
                      WHERE paused.name = jobs_job.queue AND paused.paused_at IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM tenants_tenant paused
                      WHERE paused.id = jobs_job.tenant_id AND paused.paused_at IS NOT NULL)
    RETURNING *
), attempt AS (
    INSERT INTO jobs_attempt (job_id, number, trigger, triggered_by_id, worker_name, hostname, pid,
                              started_at, heartbeat_at, ended_at, outcome, error_type, error_message, traceback)
    SELECT id, attempts, next_trigger, next_triggered_by_id, %(worker)s, %(host)s, %(pid)s,
           started_at, started_at, NULL, '', '', '', ''
    FROM claimed
    RETURNING id, trigger, triggered_by_id
)
SELECT attempt.id, attempt.trigger, attempt.triggered_by_id,
       {", ".join(f"claimed.{c}" for c in JOB_COLUMNS)},
       {", ".join(f"tenant.{c}" for c in TENANT_COLUMNS)}
FROM claimed CROSS JOIN attempt LEFT JOIN tenants_tenant tenant ON tenant.id = claimed.tenant_id
"""


def _fetchone(sql: str, params) -> tuple | None:
    # A prepared statement on the worker's long-lived connection: parsed and planned once, not per
    # job (planning was a third of the claim's cost). Django's own cursors bind client-side.
    with _server_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def _server_cursor() -> psycopg.Cursor:
    # Django binds parameters client-side; prepared statements need server-side binding.
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def claim(*, job_id: str, worker_name: str, hostname: str, pid: int) -> tuple[Job, Attempt] | None:
    """Claim on the database's clock: the attempt starts and heartbeats at the server's `now()`, so a
    worker host whose clock is off cannot make a live attempt look dead (or a dead one alive)."""
    params = {"id": uuid.UUID(str(job_id)), "worker": worker_name, "host": hostname, "pid": pid}
    row = _fetchone(CLAIM_SQL, params)
    if row is None:
        return None
    attempt_id, trigger, triggered_by_id = row[:3]
    job_values = row[3:3 + len(JOB_COLUMNS)]
    tenant_values = row[3 + len(JOB_COLUMNS):]
    job = Job.from_db("default", JOB_ATTNAMES, _converted(Job, job_values))
    if job.tenant_id is not None:
        job.tenant = Tenant.from_db("default", TENANT_ATTNAMES, _converted(Tenant, tenant_values))
    attempt = Attempt(id=attempt_id, job=job, number=job.attempts, trigger=trigger, triggered_by_id=triggered_by_id,
                      worker_name=worker_name, hostname=hostname, pid=pid, started_at=job.started_at,
                      heartbeat_at=job.started_at)
    attempt._state.adding = False
    return job, attempt


def _converted(model, values) -> list[Any]:
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, field, connection)
        converted.append(value)
    return converted


def finish(*, attempt: Attempt, ended_at, outcome_fields: dict[str, Any], status: str,
           job_fields: dict[str, Any]) -> str | None:
    """Settle the attempt and move its job; the job's new status, or None if the attempt was settled."""
    attempt_sets, attempt_params = _assignments(Attempt, {"ended_at": ended_at, **outcome_fields})
    job_sets, job_params = _assignments(Job, {"status": status, "updated_at": ended_at, **job_fields})
    allowed = list(ALLOWED_FROM[status])
    sql = f"""
        WITH settled AS (
            UPDATE jobs_attempt SET {attempt_sets}
            WHERE id = %s AND ended_at IS NULL
            RETURNING job_id
        ), moved AS (
            UPDATE jobs_job SET {job_sets}
            FROM settled
            WHERE jobs_job.id = settled.job_id AND jobs_job.attempts = %s AND jobs_job.status = ANY(%s)
            RETURNING jobs_job.status
        )
        SELECT (SELECT count(*) FROM settled), (SELECT status FROM moved)
    """
    params = [*attempt_params, attempt.pk, *job_params, attempt.number, allowed]
    settled, moved_status = _fetchone(sql, params)
    if not settled:
        return None
    return moved_status or ""


INSERT_SQL = f"INSERT INTO jobs_job ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})"
COPY_SQL = f"COPY jobs_job ({', '.join(JOB_COLUMNS)}) FROM STDIN"


def insert_jobs(jobs: list[Job]) -> None:
    """Store new jobs: one prepared INSERT for one job, COPY for many (thousands of rows in one go)."""
    rows = [_row(job) for job in jobs]
    with _server_cursor() as cursor:
        if len(rows) == 1:
            cursor.execute(INSERT_SQL, rows[0], prepare=True)
        else:
            with cursor.copy(COPY_SQL) as copy:
                for row in rows:
                    copy.write_row(row)
    for job in jobs:
        job._state.adding = False
        job._state.db = connection.alias


_JSON_ATTNAMES = frozenset(f.attname for f in Job._meta.concrete_fields if isinstance(f, JSONField))


def _row(job: Job) -> list[Any]:
    # psycopg adapts every column type natively except JSON, which needs its wrapper; this skips
    # Django's per-field preparation, the slowest part of storing thousands of rows.
    values = []
    for attname in JOB_ATTNAMES:
        value = getattr(job, attname)
        values.append(Jsonb(value) if attname in _JSON_ATTNAMES and value is not None else value)
    return values


def _assignments(model, values: dict[str, Any]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        parts.append(f"{field.column} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return ", ".join(parts), params



# Every tenant with a waiting job, one index probe each (a skip scan of `job_pending_by_tenant`), however
# many jobs wait.
TENANTS_WAITING_SQL = """
WITH RECURSIVE tenants(id) AS (
    (SELECT tenant_id FROM jobs_job WHERE status = 'pending' AND tenant_id IS NOT NULL ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT tenant_id FROM jobs_job WHERE status = 'pending' AND tenant_id > tenants.id
            ORDER BY tenant_id LIMIT 1)
    FROM tenants WHERE tenants.id IS NOT NULL
)
SELECT id FROM tenants WHERE id IS NOT NULL
"""


def global_candidates(*, field: str, name: str, excluded_kinds: list[str], now, room: int, paused_queues: list[str],
                      paused_tenants: Collection[int], fields: tuple[str, ...]) -> list[tuple]:
    """What a refill under a limit across tenants chooses from (`field` "kind" or "queue" equal to `name`;
    jobs of `excluded_kinds` are under limits of their own): each waiting tenant's first jobs by priority,
    then age, enough for every tenant to have turns in `room` hand-overs (about 4 x `room` rows in all);
    the system's likewise; and up to 4 x `room` due retries and delayed jobs, the longest due first. Rows
    are `fields` and the tenant id.

    Bounded by the tenants with waiting work and by `room`, whatever the backlog: the tenants come from a
    skip scan, each tenant's rows from a range scan with a LIMIT (`job_pending_by_kind` for a kind,
    `job_pending_by_tenant` for a queue). Ranking every waiting row of the kind instead cost 50 ms per
    refill at 100,000 and 250 ms at 400,000."""
    assert field in ("kind", "queue")
    columns = ", ".join(f"job.{column}" for column in fields)
    scope = f"job.{field} = %(name)s AND job.queue <> ALL(%(paused_queues)s) AND job.kind <> ALL(%(excluded)s)"
    sql = f"""
        SELECT picked.* FROM unnest(%(tenants)s::bigint[]) AS tenants(id) CROSS JOIN LATERAL (
            SELECT {columns}, job.tenant_id FROM jobs_job job
            WHERE job.status = 'pending' AND job.tenant_id = tenants.id AND {scope}
            ORDER BY job.priority DESC, job.id LIMIT %(per_tenant)s
        ) picked
        UNION ALL
        (SELECT {columns}, job.tenant_id FROM jobs_job job
         WHERE job.status = 'pending' AND job.tenant_id IS NULL AND {scope}
         ORDER BY job.priority DESC, job.id LIMIT %(room)s)
        UNION ALL
        (SELECT {columns}, job.tenant_id FROM jobs_job job
         WHERE job.status IN ('scheduled', 'retrying') AND job.run_at <= %(now)s AND {scope}
           AND (job.tenant_id IS NULL OR job.tenant_id <> ALL(%(paused_tenants)s::bigint[]))
         ORDER BY job.run_at LIMIT %(timed)s)
    """
    with _server_cursor() as cursor:
        cursor.execute(TENANTS_WAITING_SQL, prepare=True)
        paused = set(paused_tenants)
        tenants = [row[0] for row in cursor.fetchall() if row[0] not in paused]
        per_tenant = min(room, max(2, math.ceil(4 * room / max(1, len(tenants)))))
        cursor.execute(sql, {"name": name, "excluded": excluded_kinds, "paused_queues": paused_queues, "room": room,
                             "tenants": tenants, "per_tenant": per_tenant, "paused_tenants": sorted(paused),
                             "now": now, "timed": room * 4})
        return cursor.fetchall()


def refill_pick(*, tenant_id: int, now, room: int, queues: list[str], paused: list[str], kind_room: dict[str, int],
                held_message: str, held_elsewhere: list[str] = ()) -> list[tuple]:
    """The relay's refill of one tenant as one statement (the caller holds the tenant's lock): pick up to
    `room` due rows (due retries and delayed jobs first, then held jobs by queue order; within each, by
    job priority, then oldest first; each capped kind within its own room), move them to `queued`, and
    move the tenant's due retries and delayed jobs that did not fit to `pending` with `held_message`, but
    those of `paused` queues and of kinds `held_elsewhere` (limited across tenants): what holds them
    says so when it moves them.
    Returns the picked rows as (id, queue, kind, timeout, attempts, enqueued_at before the move,
    request_id, priority)."""
    capped = list(kind_room)
    sources, params = [], []

    def source(rank: int, where: str, order: str, limit: int, *values) -> None:
        # Each source is a range scan of its own index, cut at `limit` before the sources are merged.
        sources.append(f"(SELECT id, {rank} AS rank, priority, run_at FROM jobs_job WHERE tenant_id = %s AND {where}"
                       f" ORDER BY {order} LIMIT %s)")
        params.extend([tenant_id, *values, limit])

    timed = "status IN ('scheduled', 'retrying') AND run_at <= %s"
    source(0, f"{timed} AND queue <> ALL(%s) AND kind <> ALL(%s)", "priority DESC, run_at", room, now, paused, capped)
    for rank, queue in enumerate(queues, start=1):
        if queue not in paused:
            source(rank, "status = 'pending' AND queue = %s AND kind <> ALL(%s)", "priority DESC, id", room, queue,
                   capped)
    for kind, left in kind_room.items():
        if left > 0:
            source(len(queues) + 1, f"(status = 'pending' OR ({timed})) AND kind = %s AND queue <> ALL(%s)",
                   "priority DESC, id", min(left, room), now, kind, paused)
    # On a queue no longer configured: handed over only to be failed visibly (relay.hand_over).
    source(len(queues) + 2, "status = 'pending' AND queue <> ALL(%s)", "id", room, queues)
    sql = f"""
        WITH candidates AS ({" UNION ALL ".join(sources)}),
        picked AS (
            SELECT job.id, job.enqueued_at FROM candidates JOIN jobs_job job ON job.id = candidates.id
            ORDER BY candidates.rank, candidates.priority DESC, candidates.run_at, candidates.id LIMIT %s
        ),
        moved AS (
            UPDATE jobs_job SET status = 'queued', enqueued_at = %s, updated_at = %s, progress_message = ''
            FROM picked WHERE jobs_job.id = picked.id AND jobs_job.status IN ('pending', 'scheduled', 'retrying')
            RETURNING jobs_job.id, jobs_job.queue, jobs_job.kind, jobs_job.timeout, jobs_job.attempts,
                      picked.enqueued_at, jobs_job.request_id, jobs_job.priority
        ),
        held AS (
            UPDATE jobs_job SET status = 'pending', updated_at = %s, progress_message = %s
            WHERE tenant_id = %s AND {timed} AND id NOT IN (SELECT id FROM picked)
              AND queue <> ALL(%s) AND kind <> ALL(%s)
        )
        SELECT * FROM moved
    """
    params += [room, now, now, now, held_message, tenant_id, now, paused, list(held_elsewhere)]
    # Prepared, like the claim: the text is the same for every refill of a given set of queues and
    # capped kinds, and planning this statement cost more than running it.
    with _server_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


# After every attempt of a tenant with a limit: one prepared statement (the ORM's compilation of it cost
# ten times its execution, and planning as much again).
TENANT_STATE_SQL = f"""
SELECT tenant.paused_at, tenant.concurrency_limit, tenant.slug,
       (SELECT count(*) FROM {Job._meta.db_table} job
        WHERE job.tenant_id = tenant.id AND job.status IN ('queued', 'running')) AS busy,
       (SELECT count(*) FROM (SELECT 1 FROM {Job._meta.db_table} job
                              WHERE job.tenant_id = tenant.id AND job.status = 'pending' LIMIT %(enough)s) held)
       + (SELECT count(*) FROM (SELECT 1 FROM {Job._meta.db_table} job
                                WHERE job.tenant_id = tenant.id AND job.status IN ('scheduled', 'retrying')
                                AND job.run_at <= %(now)s LIMIT %(enough)s) due) AS waiting
FROM {Tenant._meta.db_table} tenant WHERE tenant.id = %(tenant)s
"""


def tenant_state(*, tenant_id: int, now, enough: int) -> tuple | None:
    """(paused_at, concurrency_limit, slug, jobs queued or running, due jobs waiting counted up to `enough`
    of each sort) of one tenant."""
    params = {"tenant": tenant_id, "now": now, "enough": enough}
    if supported():
        return _fetchone(TENANT_STATE_SQL, params)
    with connection.cursor() as cursor:
        cursor.execute(TENANT_STATE_SQL, params)
        return cursor.fetchone()


def autovacuum_state() -> tuple[bool, list[str]]:
    """Whether the server runs autovacuum at all, and which of the engine's busiest tables have it turned
    off. Every attempt updates its job row twice; without vacuum the dead row versions pile up in the
    tables and their indexes, and the relay's and the admin's reads slow down by orders of magnitude
    within days."""
    tables = [Job._meta.db_table, Attempt._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum')::boolean AND current_setting('track_counts')::boolean")
        server = cursor.fetchone()[0]
        cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s) "
                       "AND 'autovacuum_enabled=false' = ANY(reloptions)", [tables])
        return server, sorted(row[0] for row in cursor.fetchall())
