"""Job kinds used by in-process tests (the worker subprocesses use the built-in diagnostics.ping)."""
from __future__ import annotations

import time
from datetime import datetime

from jobs import job_kind

calls: list[tuple[str, dict]] = []


@job_kind("tests.echo", queue="high", max_attempts=2, backoff=0)
def echo(ctx, *, text: str, count: int = 1, when: datetime | None = None) -> dict:
    calls.append(("tests.echo", {"text": text, "count": count, "when": when}))
    return {"text": text * count, "tenant": ctx.tenant.slug if ctx.tenant else None}


@job_kind("tests.flaky", max_attempts=3, backoff=0)
def flaky(ctx, *, fail_attempts: int) -> str:
    calls.append(("tests.flaky", {"attempt": ctx.attempt.number}))
    if ctx.attempt.number <= fail_attempts:
        raise RuntimeError(f"boom on attempt {ctx.attempt.number}")
    return "ok"


@job_kind("tests.chatty", max_attempts=1)
def chatty(ctx, *, reports: int, fail: bool = False) -> None:
    for i in range(1, reports + 1):
        ctx.progress(i * 100 / reports, f"report {i}")
    if fail:
        raise ValueError("chatty failed at the end")


@job_kind("tests.slow", max_attempts=2, timeout=1, backoff=0)
def slow(ctx, *, seconds: float) -> None:
    time.sleep(seconds)


@job_kind("tests.stoppable", max_attempts=3)
def stoppable(ctx, *, stop_after: int) -> None:
    from jobs.services import job_stop

    for i in range(100):
        if i == stop_after:
            job_stop(job=ctx.job)
        ctx.progress(i)
        ctx.check_stop()


@job_kind("tests.bad_result", max_attempts=1)
def bad_result(ctx) -> object:
    return {"when": datetime(2026, 1, 1)}


@job_kind("tests.steered", max_attempts=3, backoff=1.0, jitter=0)
def steered(ctx, *, plan: list[str], seconds: float = 60.0) -> dict:
    """Does what `plan[attempt - 1]` says: "snooze", "retry_after", "give_up", "fail" or "succeed"."""
    from jobs import GiveUp, RetryAfter, Snooze

    step = plan[ctx.attempt.number - 1]
    calls.append(("tests.steered", {"attempt": ctx.attempt.number, "step": step, "trigger": ctx.attempt.trigger}))
    ctx.progress(40, f"doing {step}")
    if step == "snooze":
        raise Snooze("waiting for the others", seconds=seconds)
    if step == "retry_after":
        raise RetryAfter("come back later", seconds=seconds)
    if step == "give_up":
        raise GiveUp("this can never work")
    if step == "fail":
        raise RuntimeError("plain failure")
    return {"attempt": ctx.attempt.number}


@job_kind("tests.urgent", queue="critical", max_attempts=1)
def urgent(ctx, *, text: str = "") -> str:
    calls.append(("tests.urgent", {"text": text}))
    return text


@job_kind("tests.capped", queue="high", max_attempts=1, tenant_concurrency=2)
def capped(ctx, *, text: str = "") -> str:
    calls.append(("tests.capped", {"text": text}))
    return text


@job_kind("tests.batch_done", queue="high", max_attempts=1)
def batch_done(ctx, *, batch: int, succeeded: int, failed: int, cancelled: int, note: str = "") -> dict:
    calls.append(("tests.batch_done", {"batch": batch, "succeeded": succeeded, "failed": failed,
                                       "cancelled": cancelled, "note": note}))
    return {"succeeded": succeeded, "failed": failed}


@job_kind("tests.rated", queue="high", max_attempts=1, tenant_rate=3)
def rated(ctx, *, text: str = "") -> str:
    return text


@job_kind("tests.parent", queue="high", max_attempts=1, sensitive=("pin",))
def parent(ctx, *, pin: str, api_token: str = "") -> str:
    from jobs import enqueue

    return str(enqueue("tests.echo", tenant=ctx.tenant, payload={"text": "child"}).pk)


@job_kind("tests.logger", max_attempts=1)
def logger(ctx, *, lines: int, level: str = "info") -> int:
    for n in range(1, lines + 1):
        ctx.log(f"line {n}", level)
    return lines


@job_kind("tests.short_lived", max_attempts=1, retention_succeeded_days=1, retention_failed_days=2)
def short_lived(ctx) -> None:
    return None


@job_kind("tests.global_capped", queue="high", max_attempts=1, global_concurrency=2)
def global_capped(ctx, *, n: int = 0) -> int:
    return n


@job_kind("tests.global_rated", queue="high", max_attempts=1, global_rate=3)
def global_rated(ctx, *, n: int = 0) -> int:
    return n
