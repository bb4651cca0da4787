"""Tracked jobs against bare RQ, in one run on one Redis and one PostgreSQL; prints jobs/s and ratios.

    ./run bench                 # all comparisons, 3 interleaved repetitions each
    ./run bench --reps 5 --only processing
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import ROOT, RedisServer, setup_database, setup_django

ENQUEUE_N = 2000
BULK_N = 10_000
# (what is compared, bare RQ's worker class, ours, jobs): the default worker (a long-lived work process)
# against RQ's fastest, and each of ours against its RQ counterpart.
PROCESSING = [
    ("TrackedWorker vs SimpleWorker", "rq.worker.SimpleWorker", "jobs.workers.TrackedWorker", 2000),
    ("TrackedSimpleWorker vs SimpleWorker", "rq.worker.SimpleWorker", "jobs.workers.TrackedSimpleWorker", 2000),
    ("TrackedForkingWorker vs Worker", "rq.worker.Worker", "jobs.workers.TrackedForkingWorker", 400),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", choices=["enqueue", "bulk", "processing"])
    args = parser.parse_args()

    redis_server = RedisServer().start()
    try:
        setup_database("tracked_jobs_bench")
        setup_django(redis_server.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        rows = []
        if args.only in (None, "enqueue"):
            rows.append(compare("single enqueue", ENQUEUE_N, bare_enqueue, tracked_enqueue, args.reps, redis_server))
        if args.only in (None, "bulk"):
            rows.append(compare("bulk enqueue (10,000)", BULK_N, bare_enqueue_many, tracked_enqueue_many,
                                args.reps, redis_server))
        if args.only in (None, "processing"):
            for name, bare_class, tracked_class, n in PROCESSING:
                rows.append(compare(f"no-op, {name}", n,
                                    lambda n, wc=bare_class: bare_processing(n, wc, redis_server.url),
                                    lambda n, wc=tracked_class: tracked_processing(n, wc, redis_server.url),
                                    args.reps, redis_server))
        print()
        print(f"{'comparison':<44} {'bare RQ jobs/s':>15} {'tracked jobs/s':>15} {'ratio':>7}")
        for name, bare, tracked, ratio in rows:
            print(f"{name:<44} {bare:>15.0f} {tracked:>15.0f} {ratio:>7.2f}")
        print("(medians over the repetitions; the ratio is the median of the per-repetition ratios)")
        if COSTS:
            print_costs()
    finally:
        redis_server.cleanup()


def compare(name, n, bare, tracked, reps, redis_server):
    """Interleave the two sides, `reps` times each, on emptied stores; medians of jobs/s and of the
    paired ratios (this machine's speed drifts between repetitions more than within one)."""
    bare_rates, tracked_rates = [], []
    for _ in range(reps):
        for side, rates in ((bare, bare_rates), (tracked, tracked_rates)):
            reset(redis_server)
            seconds = side(n)
            rates.append(n / seconds)
    ratios = [t / b for b, t in zip(bare_rates, tracked_rates, strict=True)]
    result = (name, statistics.median(bare_rates), statistics.median(tracked_rates), statistics.median(ratios))
    print(f"{name}: bare {[round(r) for r in bare_rates]} tracked {[round(r) for r in tracked_rates]}",
          flush=True)
    return result


def reset(redis_server) -> None:
    from jobs.models import Job

    redis_server.client().flushall()
    Job.objects.all().delete()


def tenant():
    from tenants.models import Tenant

    return Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})[0]


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
    from jobs import enqueue

    owner = tenant()
    enqueue("bench.noop", tenant=owner, payload={"x": 0})
    start = time.perf_counter()
    for i in range(n):
        enqueue("bench.noop", tenant=owner, payload={"x": i})
    return time.perf_counter() - start


def bare_enqueue_many(n: int) -> float:
    queue = bare_queue()
    start = time.perf_counter()
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([queue.prepare_data("bare.noop", (i,)) for i in range(n)], pipeline=pipe)
        pipe.execute()
    return time.perf_counter() - start


def tracked_enqueue_many(n: int) -> float:
    from django.db import transaction

    from jobs import enqueue_many

    owner = tenant()
    start = time.perf_counter()
    with transaction.atomic():
        enqueue_many("bench.noop", tenant=owner, payloads=[{"x": i} for i in range(n)])
    return time.perf_counter() - start


# Per job, during the workers' run: Redis commands (INFO commandstats) and PostgreSQL transactions (each
# autocommitted statement is one) by the worker processes; printed beside the rates.
COSTS: dict[str, list[tuple[float, float]]] = {}


def costs_of(label: str, n: int, run) -> None:
    from jobs import transport

    before = (_redis_commands(transport.get_connection()), _pg_transactions())
    run()
    after = (_redis_commands(transport.get_connection()), _pg_transactions())
    COSTS.setdefault(label, []).append(((after[0] - before[0]) / n, (after[1] - before[1]) / n))


def _redis_commands(connection) -> int:
    stats = connection.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name not in ("cmdstat_info",))


def _pg_transactions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, now
        cursor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def print_costs() -> None:
    print()
    print(f"{'worker (per job, median)':<44} {'Redis commands':>15} {'PG transactions':>16}")
    for label, values in COSTS.items():
        print(f"{label:<44} {statistics.median(v[0] for v in values):>15.1f} "
              f"{statistics.median(v[1] for v in values):>16.1f}")


def bare_processing(n: int, worker_class: str, redis_url: str) -> float:
    queue = bare_queue()
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([queue.prepare_data("bare.noop", (i,), result_ttl=3600) for i in range(n)],
                           pipeline=pipe)
        pipe.execute()
    costs_of(worker_class, n, lambda: run_worker(worker_class, redis_url))
    from rq.job import Job as RQJob

    ids = queue.finished_job_registry.get_job_ids()
    jobs = RQJob.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
    assert len(ids) == n, f"bare run finished {len(ids)} of {n}"
    return window([j.started_at for j in jobs], [j.ended_at for j in jobs])


def tracked_processing(n: int, worker_class: str, redis_url: str) -> float:
    from django.db import transaction

    from jobs import enqueue_many
    from jobs.models import Attempt, Job, Status

    with transaction.atomic():
        enqueue_many("bench.noop", tenant=tenant(), payloads=[{"x": i} for i in range(n)])
    costs_of(worker_class, n, lambda: run_worker(worker_class, redis_url))
    done = Job.objects.filter(status=Status.SUCCEEDED).count()
    assert done == n, f"tracked run finished {done} of {n}"
    times = list(Attempt.objects.values_list("started_at", "ended_at"))
    return window([t[0] for t in times], [t[1] for t in times])


def window(starts, ends) -> float:
    return (max(ends) - min(starts)).total_seconds()


def run_worker(worker_class: str, redis_url: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "bench" / "worker.py"), worker_class, redis_url], check=True)


if __name__ == "__main__":
    main()
