"""What the benchmarks run in tracked workers: a no-op as a job kind and as a Django task, a 20 ms wait
(I/O) and 20 ms of CPU (bare RQ's are bench/bare.py, Celery's bench/peers/celery_project.py)."""
from __future__ import annotations

from django.tasks import task

from jobs import job_kind


@job_kind("bench.noop", max_attempts=1, timeout=60)
def tracked_noop(ctx, *, x: int) -> int:
    return x + 1


@job_kind("bench.sleep", max_attempts=1, timeout=60)
def tracked_sleep(ctx, *, ms: int) -> int:
    import time

    time.sleep(ms / 1000)
    return ms


@job_kind("bench.burn", max_attempts=1, timeout=60)
def tracked_burn(ctx, *, ms: int) -> int:
    import time

    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass
    return ms


@task(max_attempts=1, timeout=60)
def django_noop(x: int) -> int:
    """bench.noop as a Django task (this module is in TRACKED_TASK_MODULES for the benchmarks)."""
    return x + 1


@job_kind("soak.work", max_attempts=6, timeout=30, backoff=0.5, backoff_max=2)
def soak_work(ctx, *, ms: int, fail_rate: float, ledger_url: str) -> int:
    """Sleeps `ms`, fails at random, and counts every execution of every attempt in a Redis ledger,
    so the soak run can prove that no attempt ran twice."""
    import random
    import time

    import redis

    redis.Redis.from_url(ledger_url).hincrby("soak:runs", f"{ctx.job.pk}:{ctx.attempt.number}", 1)
    time.sleep(ms / 1000)
    ctx.progress(100, "slept")
    if random.random() < fail_rate:
        raise RuntimeError("soak failure on purpose")
    return ms
