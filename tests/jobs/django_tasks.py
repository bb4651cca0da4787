"""Plain Django tasks, written as any Django app would write them: they import nothing of the engine
but `jobs.progress` (one of them, to drive the progress bar)."""
from __future__ import annotations

import asyncio
import os
import time

from django.tasks import task

import jobs

calls: list[tuple[str, tuple, dict]] = []


@task()
def noop(*args, **kwargs) -> None:
    calls.append(("noop", args, kwargs))


@task()
async def noop_async(*args, **kwargs) -> None:
    await asyncio.sleep(0)
    calls.append(("noop_async", args, kwargs))


@task()
def meaning_of_life() -> int:
    return 42


@task()
async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(max_attempts=1)
def fails() -> None:
    raise ValueError("This task failed on purpose")


@task(max_attempts=2, backoff=0.0)
def fails_once(marker: str) -> str:
    calls.append(("fails_once", (marker,), {}))
    if sum(1 for name, args, _ in calls if name == "fails_once" and args == (marker,)) == 1:
        raise RuntimeError("first attempt fails")
    return marker


@task(takes_context=True, max_attempts=3, backoff=0.0)
def attempt_and_id(context, fail_until: int = 0) -> dict:
    if context.attempt <= fail_until:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return {"id": context.task_result.id, "attempt": context.attempt}


@task()
def reports_progress(steps: int) -> str:
    for step in range(1, steps + 1):
        jobs.progress(100 * step / steps, f"step {step} of {steps}")
    return "done"


@task()
def complex_return() -> object:
    return {"when": object()}


@task(public=True, queue_name="low")
def public_cleanup(days: int = 7) -> int:
    return days


@task()
def gives_up() -> None:
    raise jobs.GiveUp("no point trying again")


@task(tenant_concurrency=1)
def one_at_a_time(n: int) -> int:
    return n


# For the work process's tests (tests/jobs/test_work_process.py), run by real workers.

_held: list[bytearray] = []


@task(max_attempts=1)
def which_process() -> int:
    return os.getpid()


@task(max_attempts=1)
def crash() -> None:
    os._exit(3)  # as a segfault or the OOM killer would end it: no exception, no outcome


@task(max_attempts=1)
def hold_memory(mb: int) -> int:
    _held.append(bytearray(mb * 1024 * 1024))  # a leak: kept after the job
    return os.getpid()


@task(max_attempts=1)
def allocate(mb: int) -> int:
    return len(bytearray(mb * 1024 * 1024))


@task(max_attempts=1, timeout=2)
def sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
