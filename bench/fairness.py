"""Tenant fairness: A enqueues a backlog, then B enqueues a few. When does B's first job start, and what
does the limit cost in throughput? Bare RQ, tracked without limits and tracked with limits, in one run.

    ./run bench fairness                         # A: 10,000 jobs, B: 10, 2 SimpleWorkers, limit 50
    ./run bench fairness --jobs 2000 --worker fork --limit 10

Workers are real worker processes (bench/worker.py, as in `./run bench`) on the default queue, with
`manage.py rqscheduler` beside them in tracked runs; the jobs are no-ops, the worst case for what the limit adds per job (a refill after every attempt).
Goals: B's first job starts within 2 s with limits (bare RQ: after A's backlog), and throughput with
limits is at least 0.9x of the tracked run without them. The last runs give the kind, then
its queue, a global rate (`--global-rate`, JOBS_KIND_LIMITS, then JOBS_QUEUE_LIMITS): throughput holds at
that rate within 5 % and B still gets its turn.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime

from common import ROOT, RedisServer, reset, setup_database, setup_django

WORKER_CLASSES = {"simple": ("rq.worker.SimpleWorker", "jobs.workers.TrackedSimpleWorker"),
                  "process": ("rq.worker.SimpleWorker", "jobs.workers.TrackedWorker"),
                  "fork": ("rq.worker.Worker", "jobs.workers.TrackedForkingWorker")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000, help="tenant A's backlog")
    parser.add_argument("--b-jobs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=50,
                        help="tenant concurrency limit in the limited run (default: the product's default)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", choices=list(WORKER_CLASSES), default="simple")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--global-rate", type=int, default=100, help="bench.noop's global rate in the last run")
    parser.add_argument("--global-jobs", type=int, default=3000, help="tenant A's backlog in the global-rate run")
    args = parser.parse_args()

    redis_server = RedisServer().start()
    try:
        setup_database("tracked_jobs_bench_fairness")
        setup_django(redis_server.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        rated = f"global rate {args.global_rate}/s"
        queue_rated = f"queue rate {args.global_rate}/s"
        results: dict[str, list[tuple[float, float]]] = {"bare RQ": [], "tracked, no limit": [],
                                                         f"tracked, limit {args.limit}": [], rated: [],
                                                         queue_rated: []}
        for rep in range(args.reps):
            results["bare RQ"].append(bare(args, redis_server))
            results["tracked, no limit"].append(tracked(args, redis_server, limit=0))
            results[f"tracked, limit {args.limit}"].append(tracked(args, redis_server, limit=args.limit))
            results[rated].append(tracked(args, redis_server, limit=args.limit, jobs=args.global_jobs,
                                          kind_limits={"bench.noop": {"global_rate": args.global_rate}}))
            results[queue_rated].append(tracked(args, redis_server, limit=args.limit, jobs=args.global_jobs,
                                                queue_limits={"default": {"global_rate": args.global_rate}}))
            print(f"repetition {rep + 1}: " + "; ".join(f"{name}: B waited {r[-1][0]:.2f} s, {r[-1][1]:.0f} jobs/s"
                                                         for name, r in results.items()), flush=True)
        print()
        print(f"A: {args.jobs:,} jobs, then B: {args.b_jobs}; {args.workers} {args.worker} workers; no-op jobs")
        print(f"{'run':<22} {'B first start s':>16} {'jobs/s':>8} {'vs no limit':>12}  (medians)")
        unlimited = [r[1] for r in results["tracked, no limit"]]
        for name, runs in results.items():
            wait, rate = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            # The median of the paired ratios: this machine's speed drifts between repetitions more than
            # within one.
            paired = [r[1] / u for r, u in zip(runs, unlimited, strict=True)]
            ratio = f"{statistics.median(paired):.2f}" if name.startswith("tracked") else ""
            if name in (rated, queue_rated):  # measured against its own limit, not against the unlimited run
                ratio = f"{rate / args.global_rate:.2f} of it"
            print(f"{name:<22} {wait:>16.2f} {rate:>8.0f} {ratio:>12}")
        print("(B first start: from B's enqueue to its first job starting; jobs/s: all jobs from the start of A's "
              "enqueue to the last job's end)")
    finally:
        redis_server.cleanup()



def bare(args, redis_server) -> tuple[float, float]:
    from rq import Queue
    from rq.job import Job as RQJob
    from rq.serializers import JSONSerializer

    from jobs import transport
    from tests.support import wait_for

    reset(redis_server)
    queue = Queue("default", connection=transport.get_connection(), serializer=JSONSerializer)
    workers = [bench_worker(WORKER_CLASSES[args.worker][0], redis_server.url) for _ in range(args.workers)]
    time.sleep(3)  # every worker up before the clock starts
    started = datetime.now(UTC)
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([queue.prepare_data("bare.noop", (i,), result_ttl=3600) for i in range(args.jobs)],
                           pipeline=pipe)
        pipe.execute()
    b_enqueued = datetime.now(UTC)
    b_ids = [queue.enqueue("bare.noop", i, result_ttl=3600).id for i in range(args.b_jobs)]
    total = args.jobs + args.b_jobs
    try:
        wait_for(lambda: queue.finished_job_registry.count + queue.failed_job_registry.count >= total,
                 timeout=3600, what="bare RQ run", interval=0.5)
    finally:
        for worker in workers:
            worker.terminate()
    assert queue.failed_job_registry.count == 0, "bare RQ jobs failed"
    jobs = RQJob.fetch_many(queue.finished_job_registry.get_job_ids(), connection=queue.connection,
                            serializer=queue.serializer)
    b_start = min(job.started_at for job in jobs if job.id in b_ids).replace(tzinfo=UTC)
    ended = max(job.ended_at for job in jobs).replace(tzinfo=UTC)
    return (b_start - b_enqueued).total_seconds(), total / (ended - started).total_seconds()


def tracked(args, redis_server, *, limit: int, jobs: int | None = None, kind_limits: dict | None = None,
            queue_limits: dict | None = None) -> tuple[float, float]:
    from django.conf import settings
    from django.db import transaction

    from jobs import enqueue, enqueue_many, relay
    from jobs.models import Attempt, Job, Status
    from tenants.models import Tenant
    from tests.support import wait_for

    reset(redis_server)
    settings.JOBS_TENANT_CONCURRENCY = limit
    settings.JOBS_KIND_LIMITS = kind_limits or {}
    settings.JOBS_QUEUE_LIMITS = queue_limits or {}
    relay.forget_tenant_load()
    a_jobs = args.jobs if jobs is None else jobs
    a = Tenant.objects.get_or_create(slug="tenant-a", defaults={"name": "Tenant A"})[0]
    b = Tenant.objects.get_or_create(slug="tenant-b", defaults={"name": "Tenant B"})[0]
    env = {"JOBS_TENANT_CONCURRENCY": str(limit), "JOBS_KIND_LIMITS": json.dumps(kind_limits or {}),
           "JOBS_QUEUE_LIMITS": json.dumps(queue_limits or {})}
    processes = [bench_worker(WORKER_CLASSES[args.worker][1], redis_server.url, env) for _ in range(args.workers)]
    processes.append(manage(env, redis_server.url, "rqscheduler"))
    time.sleep(3)  # every process up before the clock starts
    try:
        started = datetime.now(UTC)
        with transaction.atomic():
            enqueue_many("bench.noop", tenant=a, payloads=[{"x": i} for i in range(a_jobs)])
        b_enqueued = datetime.now(UTC)
        b_jobs = [enqueue("bench.noop", tenant=b, payload={"x": i}) for i in range(args.b_jobs)]
        total = a_jobs + args.b_jobs
        wait_for(lambda: Job.objects.filter(status__in=(Status.SUCCEEDED, Status.FAILED)).count() >= total,
                 timeout=3600, what=f"tracked run (limit {limit})", interval=0.5)
        assert not Job.objects.filter(status=Status.FAILED).exists(), "tracked jobs failed"
    finally:
        for process in processes:
            process.terminate()
    b_start = min(Attempt.objects.filter(job__in=b_jobs).values_list("started_at", flat=True))
    ended = max(Attempt.objects.values_list("ended_at", flat=True))
    return (b_start - b_enqueued).total_seconds(), total / (ended - started).total_seconds()


def bench_worker(worker_class: str, redis_url: str, env: dict[str, str] | None = None):
    """A worker process on the default queue (bench/worker.py, as the engine benchmark uses), until
    terminated: burst mode could quit while a refill is on its way."""
    import subprocess
    import sys

    return Terminable(subprocess.Popen([sys.executable, str(ROOT / "bench" / "worker.py"), worker_class, redis_url,
                                        "forever"], start_new_session=True, env={**os.environ, **(env or {})}))


def manage(env: dict[str, str], redis_url: str, *args: str):
    from tests.support import Process

    return Process(*args, redis_url=redis_url, env={**env, "JOBS_LOG_LEVEL": "WARNING",
                                                    "DATABASE_URL": os.environ["DATABASE_URL"]})


class Terminable:
    def __init__(self, popen) -> None:
        self.popen = popen

    def terminate(self) -> None:
        import signal

        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=30)


if __name__ == "__main__":
    main()
