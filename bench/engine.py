"""The engine against bare RQ and against Celery with django-celery-results, in one run on one Redis and
one PostgreSQL; prints jobs/s, the ratios and what each worker costs per job.

    ./run bench                                  # everything, 3 interleaved repetitions
    ./run bench --only processing --reps 5       # or: enqueue, limits, peers
    ./run bench --no-peers                       # without Celery (no virtualenv to set up)

Enqueue rates are timed around the calls. Worker rates are jobs/s between the first and the last job's
completion, read from each system's own records (RQ's job hashes, the Attempt rows, Celery's
TaskResult rows), with the workers started before the jobs arrive and every worker class on the same
jobs: a no-op, a 20 ms wait (I/O: the ceiling is 50 jobs/s per worker) and 20 ms of CPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from common import ROOT, RedisServer, reset, setup_database, setup_django

ENQUEUE_N = 2000
BULK_N = 10_000
BENCH_DB = "tracked_jobs_bench"
CELERY_DB = "tracked_jobs_bench_celery"


@dataclass(frozen=True)
class Work:
    """What the jobs do: bare RQ's function, our kind, Celery's task, and their argument."""
    label: str
    bare: str
    kind: str
    peer: str
    ms: int | None = None

    def bare_args(self, i: int) -> tuple:
        return (i,) if self.ms is None else (self.ms,)

    def payload(self, i: int) -> dict:
        return {"x": i} if self.ms is None else {"ms": self.ms}


NOOP = Work("no-op", "bare.noop", "bench.noop", "noop")
SLEEP = Work("20 ms sleep", "bare.sleep", "bench.sleep", "sleep", 20)
BURN = Work("20 ms CPU", "bare.burn", "bench.burn", "burn", 20)


@dataclass(frozen=True)
class Processing:
    work: Work
    n: int
    workers: int
    bare_class: str
    tracked_class: str

    @property
    def name(self) -> str:
        ours = self.tracked_class.rsplit(".", 1)[1]
        theirs = self.bare_class.rsplit(".", 1)[1]
        return f"{self.work.label}, {self.workers}x {ours} / {theirs}"


TRACKED = "jobs.workers.TrackedWorker"
PROCESSING = [
    # The default worker (a long-lived work process) against RQ's fastest, and each of ours against its
    # RQ counterpart; then two workers on the machine's two cores, on every kind of job.
    Processing(NOOP, 2000, 1, "rq.worker.SimpleWorker", TRACKED),
    Processing(NOOP, 2000, 1, "rq.worker.SimpleWorker", "jobs.workers.TrackedSimpleWorker"),
    Processing(NOOP, 400, 1, "rq.worker.Worker", "jobs.workers.TrackedForkingWorker"),
    Processing(NOOP, 2000, 2, "rq.worker.SimpleWorker", TRACKED),
    Processing(SLEEP, 600, 2, "rq.worker.SimpleWorker", TRACKED),
    Processing(BURN, 400, 2, "rq.worker.SimpleWorker", TRACKED),
]
PEERS = [  # (work, jobs, CELERY_DB_REUSE_MAX: None is Celery's default, a new connection per task)
    (NOOP, 2000, 1000), (NOOP, 1000, None), (SLEEP, 600, 1000), (SLEEP, 600, None),
]

ROWS: list[tuple[str, float, float, float, str]] = []  # (comparison, theirs, ours, ratio, note)
COSTS: dict[str, list[dict[str, float]]] = {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=["enqueue", "processing", "limits", "peers"])
    parser.add_argument("--no-peers", action="store_true", help="skip Celery (no virtualenv to set up)")
    args = parser.parse_args()
    wanted = {args.only} if args.only else {"enqueue", "processing", "limits", "peers"}
    if args.no_peers:
        wanted.discard("peers")

    redis_server = RedisServer().start()
    try:
        setup_database(BENCH_DB)
        setup_django(redis_server.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if "enqueue" in wanted:
            enqueue_rows(args.reps, redis_server)
        if "processing" in wanted:
            for case in PROCESSING:
                compare(case.name, "bare RQ", args.reps, redis_server,
                        lambda case=case: bare_processing(case, redis_server.url),
                        lambda case=case: tracked_processing(case, redis_server.url),
                        note=ceiling(case.work, case.workers))
        if "limits" in wanted:
            case = Processing(NOOP, 2000, 1, "", TRACKED)
            compare("no-op, TrackedWorker: tenant limit 50 / none", "no limit", args.reps, redis_server,
                    lambda: tracked_processing(case, redis_server.url, limit=0),
                    lambda: tracked_processing(case, redis_server.url, limit=None, label=f"{TRACKED}, limit 50"))
        if "peers" in wanted:
            peer_rows(args.reps, redis_server)
        report()
    finally:
        redis_server.cleanup()


def compare(name: str, theirs: str, reps: int, redis_server, bare, tracked, note: str = "") -> None:
    """Interleave the two sides, `reps` times each, on emptied stores; medians of jobs/s and of the
    paired ratios (this machine's speed drifts between repetitions more than within one)."""
    bare_rates, tracked_rates = [], []
    for _ in range(reps):
        for side, rates in ((bare, bare_rates), (tracked, tracked_rates)):
            reset(redis_server)
            rates.append(side())
    ratios = [t / b for b, t in zip(bare_rates, tracked_rates, strict=True)]
    ROWS.append((name, statistics.median(bare_rates), statistics.median(tracked_rates), statistics.median(ratios),
                 note or theirs))
    print(f"{name}: {theirs} {[round(r) for r in bare_rates]} ours {[round(r) for r in tracked_rates]}", flush=True)


def report() -> None:
    width = max(len(name) for name in [*(row[0] for row in ROWS), *COSTS, "comparison (ours / theirs)"])
    print()
    print(f"{'comparison (ours / theirs)':<{width}} {'theirs/s':>9} {'ours/s':>8} {'ratio':>6}  against")
    for name, theirs, ours, ratio, note in ROWS:
        print(f"{name:<{width}} {theirs:>9.0f} {ours:>8.0f} {ratio:>6.2f}  {note}")
    print("(medians over the repetitions; the ratio is the median of the per-repetition ratios)")
    if COSTS:
        print()
        print(f"{'worker, per job (medians)':<{width}} {'Redis cmds':>10} {'PG xacts':>9} {'PG sessions':>12}")
        for label, values in COSTS.items():
            print(f"{label:<{width}} {statistics.median(v['redis_commands'] for v in values):>10.1f} "
                  f"{statistics.median(v['pg_transactions'] for v in values):>9.1f} "
                  f"{statistics.median(v['pg_sessions'] for v in values):>12.3f}")


def ceiling(work: Work, workers: int) -> str:
    return f"bare RQ; ceiling {1000 / work.ms * workers:.0f}/s" if work.ms and work.label.endswith("sleep") else ""


# --- Enqueue ------------------------------------------------------------------------------------------

def enqueue_rows(reps: int, redis_server) -> None:
    compare("single enqueue (a durable commit each)", "bare RQ", reps, redis_server,
            lambda: rate(ENQUEUE_N, bare_enqueue), lambda: rate(ENQUEUE_N, tracked_enqueue))
    compare("enqueue in a view's transaction, one other INSERT", "bare RQ", reps, redis_server,
            lambda: rate(ENQUEUE_N, bare_enqueue_in_transaction),
            lambda: rate(ENQUEUE_N, tracked_enqueue_in_transaction))
    compare("  the same, tenant at its limit (jobs held)", "bare RQ", reps, redis_server,
            lambda: rate(ENQUEUE_N, bare_enqueue_in_transaction),
            lambda: rate(ENQUEUE_N, lambda n: tracked_enqueue_in_transaction(n, limit=None)))
    compare(f"bulk enqueue ({BULK_N:,})", "bare RQ", reps, redis_server,
            lambda: rate(BULK_N, bare_enqueue_many), lambda: rate(BULK_N, tracked_enqueue_many))
    compare(f"  the same, tenant at its limit (stored, not pushed)", "bare RQ", reps, redis_server,
            lambda: rate(BULK_N, bare_enqueue_many), lambda: rate(BULK_N, lambda n: tracked_enqueue_many(n, limit=None)))


def rate(n: int, run) -> float:
    return n / run(n)


def tenant(limit: int | None = 0):
    """The benchmark's tenant; by default without a concurrency limit (0), so every job goes to RQ at
    once as bare RQ's do. None: the project's default limit (past half of it, jobs are held, then
    relayed as slots free)."""
    from jobs import relay
    from tenants.models import Tenant

    owner = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})[0]
    if owner.concurrency_limit != limit:
        owner.concurrency_limit = limit
        owner.save(update_fields=["concurrency_limit"])
    relay.forget_tenant_load()
    return owner


def bare_queue():
    from rq import Queue
    from rq.serializers import JSONSerializer

    from jobs import transport

    return Queue("default", connection=transport.get_connection(), serializer=JSONSerializer)


def bare_enqueue(n: int) -> float:
    queue = bare_queue()
    queue.enqueue("bare.noop", 0)
    queue.connection.flushall()
    start = time.perf_counter()
    for i in range(n):
        queue.enqueue("bare.noop", i)
    return time.perf_counter() - start


def tracked_enqueue(n: int) -> float:
    from jobs import enqueue, pusher

    owner = tenant()
    enqueue(NOOP.kind, tenant=owner, payload={"x": 0})
    start = time.perf_counter()
    for i in range(n):
        enqueue(NOOP.kind, tenant=owner, payload={"x": i})
    pusher.flush(60)  # the clock stops once every job is in Redis, as bare RQ's are
    return time.perf_counter() - start


def _other_insert(i: int) -> None:
    # What the view stores besides the job: one row of its own.
    from jobs.models import AuditAction, AuditEvent

    AuditEvent.objects.create(actor_name="bench", action=AuditAction.values[0], target=str(i))


def bare_enqueue_in_transaction(n: int) -> float:
    from django.db import transaction

    queue = bare_queue()
    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            _other_insert(i)
            queue.enqueue("bare.noop", i)
    return time.perf_counter() - start


def tracked_enqueue_in_transaction(n: int, limit: int | None = 0) -> float:
    from django.db import transaction

    from jobs import enqueue, pusher

    owner = tenant(limit)
    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            _other_insert(i)
            enqueue(NOOP.kind, tenant=owner, payload={"x": i})
    pusher.flush(60)  # the clock stops once every job is in Redis, as bare RQ's are
    return time.perf_counter() - start


def bare_enqueue_many(n: int) -> float:
    queue = bare_queue()
    start = time.perf_counter()
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([queue.prepare_data("bare.noop", (i,)) for i in range(n)], pipeline=pipe)
        pipe.execute()
    return time.perf_counter() - start


def tracked_enqueue_many(n: int, limit: int | None = 0) -> float:
    from django.db import transaction

    from jobs import enqueue_many, pusher

    owner = tenant(limit)
    start = time.perf_counter()
    with transaction.atomic():
        enqueue_many(NOOP.kind, tenant=owner, payloads=[{"x": i} for i in range(n)])
    pusher.flush(60)  # the clock stops once every job is in Redis, as bare RQ's are
    return time.perf_counter() - start


# --- Workers ------------------------------------------------------------------------------------------

def bare_processing(case: Processing, redis_url: str) -> float:
    from rq.job import Job as RQJob

    queue = bare_queue()
    with Workers(case.bare_class, case.workers, redis_url, label=f"{case.bare_class} x{case.workers}"):
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many([queue.prepare_data(case.work.bare, case.work.bare_args(i), result_ttl=3600)
                                for i in range(case.n)], pipeline=pipe)
            pipe.execute()
        wait_until(lambda: queue.finished_job_registry.count + queue.failed_job_registry.count >= case.n)
    assert queue.failed_job_registry.count == 0, "bare RQ jobs failed"
    jobs = RQJob.fetch_many(queue.finished_job_registry.get_job_ids(), connection=queue.connection,
                            serializer=queue.serializer)
    return completion_rate([job.ended_at for job in jobs])


def tracked_processing(case: Processing, redis_url: str, limit: int | None = 0, label: str = "") -> float:
    from django.db import transaction

    from jobs import enqueue_many
    from jobs.models import Attempt, Job, Status

    owner = tenant(limit)
    env = {} if limit == 0 else {"JOBS_TENANT_CONCURRENCY": "50"}
    # A held tenant's jobs also move at the relay's periodic pass, which the scheduler process runs.
    with Workers(case.tracked_class, case.workers, redis_url, env=env, scheduler=limit != 0,
                 label=label or f"{case.tracked_class} x{case.workers}"):
        with transaction.atomic():
            enqueue_many(case.work.kind, tenant=owner, payloads=[case.work.payload(i) for i in range(case.n)])
        wait_until(lambda: Job.objects.filter(status__in=(Status.SUCCEEDED, Status.FAILED)).count() >= case.n)
    assert not Job.objects.filter(status=Status.FAILED).exists(), "tracked jobs failed"
    return completion_rate(list(Attempt.objects.values_list("ended_at", flat=True)))


def completion_rate(ends) -> float:
    ends = sorted(ends)
    return (len(ends) - 1) / (ends[-1] - ends[0]).total_seconds()


def wait_until(predicate, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark run timed out")
        time.sleep(0.1)


class Workers:
    """`count` worker processes of a class on the default queue (bench/worker.py), running until the
    block ends; the block starts once every one of them is registered and waiting. Counts what they
    cost in Redis commands and PostgreSQL transactions and sessions."""

    def __init__(self, worker_class: str, count: int, redis_url: str, *, label: str, env=None,
                 scheduler: bool = False) -> None:
        self.args = [sys.executable, str(ROOT / "bench" / "worker.py"), worker_class, redis_url, "forever"]
        self.count, self.label, self.env, self.scheduler = count, label, {**os.environ, **(env or {})}, scheduler
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Workers:
        from rq import Worker

        from jobs import transport

        connection = transport.get_connection()
        self.before = counters()
        for _ in range(self.count):
            self.processes.append(subprocess.Popen(self.args, env=self.env, start_new_session=True))
        if self.scheduler:
            self.processes.append(subprocess.Popen([sys.executable, "manage.py", "rqscheduler"], cwd=ROOT,
                                                   env={**self.env, "JOBS_LOG_LEVEL": "WARNING"},
                                                   start_new_session=True, stderr=subprocess.DEVNULL))
        wait_until(lambda: Worker.count(connection=connection) >= self.count, timeout=60)
        time.sleep(0.5)  # a registered worker is a moment away from its first dequeue
        self.jobs_before = jobs_done()
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # RQ's teardown can hang on its pub/sub thread; the work is done
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        n = jobs_done() - self.jobs_before
        if exc[0] is None and n:
            after = counters()
            COSTS.setdefault(self.label, []).append({key: (after[key] - self.before[key]) / n for key in after})


def jobs_done() -> int:
    from jobs.models import Attempt

    from_rq = bare_queue().finished_job_registry.count
    return from_rq + Attempt.objects.count()


def counters() -> dict[str, int]:
    """Redis commands (INFO commandstats) and PostgreSQL transactions and new sessions, server-wide for
    Redis and for the benchmark's database (every autocommitted statement is a transaction)."""
    from django.db import connection

    from jobs import transport

    stats = transport.get_connection().info("commandstats")
    commands = sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")
    time.sleep(0.2)  # backends that just ended flush their counts
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
                       "WHERE datname = current_database()")
        transactions, sessions = cursor.fetchone()
    return {"redis_commands": commands, "pg_transactions": transactions, "pg_sessions": sessions}


# --- Celery with django-celery-results ------------------------------------------------------------------

def peer_rows(reps: int, redis_server) -> None:
    sys.path.insert(0, str(ROOT / "bench" / "peers"))
    import celery_peer

    python = celery_peer.ensure()
    setup_database(CELERY_DB)
    setup_database(BENCH_DB)  # back to ours: setup_database points DATABASE_URL at the last one
    broker = redis_server.url.rsplit("/", 1)[0] + "/1"
    for work, n, reuse in PEERS:
        connections = "persistent connections" if reuse else "a connection per task"
        label = f"celery prefork 2 + results, {connections}, {work.label}"

        def theirs(work=work, n=n, reuse=reuse, label=label) -> float:
            result = celery_peer.run(python, n=n, job=work.peer, ms=work.ms or 0, concurrency=2,
                                     broker_url=broker, database=CELERY_DB, reuse=reuse)
            COSTS.setdefault(label, []).append(result)
            return result["rate"]

        case = Processing(work, n, 2, "", TRACKED)
        compare(f"{work.label}, 2x TrackedWorker / Celery + results, {'reused' if reuse else 'new'} conn.",
                "celery", reps, redis_server, theirs, lambda case=case: tracked_processing(case, redis_server.url),
                note=f"Celery prefork 2 + django-celery-results, {connections}")


if __name__ == "__main__":
    main()
