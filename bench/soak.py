"""Soak: thousands of tracked jobs while workers are killed with SIGKILL at random.

    ./run soak                      # 3000 jobs, 3 workers, a kill every 0.5-2.5 s
    ./run soak --jobs 10000 --workers 4 --flush-every 20

Ends when every job is terminal (or on --timeout) and checks: no job lost (every job succeeded or
failed), every attempt closed, and no attempt ran twice (a ledger counts each attempt's executions).
Exits non-zero on any violation.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

from common import ROOT, RedisServer, setup_database, setup_django

FAST = {"JOBS_RECONCILE_SECONDS": "1", "JOBS_HEARTBEAT_SECONDS": "0.5", "JOBS_ABANDON_AFTER_SECONDS": "3",
        "JOBS_LOST_AFTER_SECONDS": "2", "JOBS_TICK_SECONDS": "0.2", "JOBS_LOG_LEVEL": "WARNING"}
WORKER_CLASSES = ["jobs.workers.TrackedWorker", "jobs.workers.TrackedSimpleWorker", "jobs.workers.TrackedForkingWorker"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--fail-rate", type=float, default=0.05)
    parser.add_argument("--flush-every", type=float, default=0, help="FLUSHDB the queues every N seconds")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    redis_server = RedisServer().start()
    ledger_url = redis_server.url.replace("/0", "/1")
    processes: list[subprocess.Popen] = []
    try:
        fresh_database("tracked_jobs_soak")
        setup_django(redis_server.url)
        from django.core.management import call_command
        from django.db import connections, transaction

        from jobs import enqueue_many
        from tenants.models import Tenant

        call_command("migrate", verbosity=0)
        tenant = Tenant.objects.create(name="Soak", slug="soak")
        payloads = [{"ms": random.randint(0, 60), "fail_rate": args.fail_rate, "ledger_url": ledger_url}
                    for _ in range(args.jobs)]
        with transaction.atomic():
            enqueue_many("soak.work", tenant=tenant, payloads=payloads)
        connections.close_all()
        env = {**os.environ, **FAST, "REDIS_URL": redis_server.url}
        processes += [spawn_worker(i, env) for i in range(args.workers)]
        processes.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "scheduler.py")], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        kills = flushes = 0
        started = last_flush = last_report = time.monotonic()
        next_kill = started + random.uniform(0.5, 2.5)
        while time.monotonic() - started < args.timeout:
            unfinished = count_unfinished()
            if time.monotonic() - last_report >= 5 or unfinished == 0:
                last_report = time.monotonic()
                print(f"{last_report - started:6.0f}s  unfinished {unfinished:6d}  kills {kills:4d}  "
                      f"flushes {flushes}", flush=True)
                if 0 < unfinished <= 10:
                    describe_unfinished()
            if unfinished == 0:
                break
            if time.monotonic() >= next_kill:
                victim = random.randrange(args.workers)
                os.killpg(processes[victim].pid, 9)
                processes[victim].wait()
                processes[victim] = spawn_worker(victim, env)
                kills += 1
                next_kill = time.monotonic() + random.uniform(0.5, 2.5)
            if args.flush_every and time.monotonic() - last_flush >= args.flush_every:
                redis_server.client().flushdb()
                flushes += 1
                last_flush = time.monotonic()
            time.sleep(0.2)
        return verify(args.jobs, ledger_url, kills)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:
                pass
        redis_server.cleanup()


def spawn_worker(index: int, env: dict[str, str]) -> subprocess.Popen:
    worker_class = WORKER_CLASSES[index % len(WORKER_CLASSES)]
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "worker.py"), worker_class, env["REDIS_URL"]],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def fresh_database(name: str) -> None:
    import psycopg

    admin = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    setup_database(name)


def describe_unfinished() -> None:
    from django.utils import timezone

    from jobs.models import Job

    now = timezone.now()
    for job in Job.objects.unfinished():
        last = job.attempt_set.order_by("-number").first()
        seconds = lambda t: f"{(now - t).total_seconds():.0f}s ago" if t else "-"  # noqa: E731
        print(f"         {job.short_id} {job.status:<9} attempt {job.attempts} enqueued {seconds(job.enqueued_at)} "
              f"last attempt {last.outcome if last else '-'} heartbeat {seconds(last.heartbeat_at) if last else '-'}")


def count_unfinished() -> int:
    from jobs.models import Job

    return Job.objects.unfinished().count()


def verify(expected: int, ledger_url: str, kills: int) -> int:
    import redis
    from django.db.models import Count, F, Max

    from jobs.models import Attempt, Job, Outcome

    problems = []
    statuses = dict(Job.objects.values_list("status").annotate(n=Count("id")))
    total = sum(statuses.values())
    if total != expected:
        problems.append(f"{expected - total} job(s) lost")
    unfinished = Job.objects.unfinished().count()
    if unfinished:
        problems.append(f"{unfinished} job(s) not terminal")
    open_attempts = Attempt.objects.filter(ended_at__isnull=True).count()
    if open_attempts:
        problems.append(f"{open_attempts} attempt(s) never closed")
    mismatched = (Job.objects.annotate(rows=Count("attempt_set"), top=Max("attempt_set__number"))
                  .exclude(rows=F("attempts")).count())
    if mismatched:
        problems.append(f"{mismatched} job(s) whose attempt rows disagree with their attempt count")
    runs = redis.Redis.from_url(ledger_url).hgetall("soak:runs")
    twice = {key.decode(): int(n) for key, n in runs.items() if int(n) > 1}
    if twice:
        problems.append(f"{len(twice)} attempt(s) ran more than once, e.g. {list(twice.items())[:3]}")
    outcomes = dict(Attempt.objects.values_list("outcome").annotate(n=Count("id")))
    print(f"jobs: {statuses}")
    print(f"attempts: {outcomes} ({sum(outcomes.values())} in all); worker kills: {kills}")
    print(f"abandoned attempts rescued: {outcomes.get(Outcome.ABANDONED, 0)}; ledger entries: {len(runs)}")
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    print("OK: every job terminal, none lost, every attempt closed, no attempt ran twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
