"""Django's task API against the engine's own `enqueue()`, for the same work, in one run: the cost of
`task.enqueue()` over `enqueue()` (goal: at most 10 % more). Both store a job and hand it to RQ.

    ./run bench tasks               # 2,000 enqueues a side, 5 interleaved repetitions
    ./run bench tasks --reps 9 --n 5000
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import RedisServer, reset, setup_database, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    redis_server = RedisServer().start()
    try:
        setup_database("tracked_jobs_bench")
        setup_django(redis_server.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        owner = tenant()
        by_enqueue, by_task, ratios = [], [], []
        for _ in range(args.reps):
            pair = []
            for side, rates in ((enqueue_jobs, by_enqueue), (enqueue_tasks, by_task)):
                reset(redis_server)
                rates.append(args.n / side(args.n, owner))
                pair.append(rates[-1])
            ratios.append(pair[0] / pair[1])  # time per task enqueue / time per enqueue()
            print(f"enqueue() {pair[0]:.0f}/s, task.enqueue() {pair[1]:.0f}/s", flush=True)
        print()
        print(f"{'path':<16} {'jobs/s':>8}")
        print(f"{'enqueue()':<16} {statistics.median(by_enqueue):>8.0f}")
        print(f"{'task.enqueue()':<16} {statistics.median(by_task):>8.0f}")
        print(f"task.enqueue() costs {statistics.median(ratios):.3f}x enqueue() (median of the paired ratios; "
              "goal at most 1.10)")
    finally:
        redis_server.cleanup()


def tenant():
    from tenants.models import Tenant

    # No concurrency limit: every job goes to Redis at once, on both sides, as the work is the same.
    owner, _ = Tenant.objects.get_or_create(slug="bench-tasks", defaults={"name": "Bench tasks"})
    Tenant.objects.filter(pk=owner.pk).update(concurrency_limit=0)
    owner.refresh_from_db()
    return owner



def enqueue_jobs(n: int, owner) -> float:
    from jobs import enqueue

    enqueue("bench.noop", tenant=owner, payload={"x": 0})
    start = time.perf_counter()
    for i in range(n):
        enqueue("bench.noop", tenant=owner, payload={"x": i})
    return time.perf_counter() - start


def enqueue_tasks(n: int, owner) -> float:
    import tasks

    from jobs import tenant_context

    with tenant_context(owner):
        tasks.django_noop.enqueue(x=0)
        start = time.perf_counter()
        for i in range(n):
            tasks.django_noop.enqueue(x=i)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
