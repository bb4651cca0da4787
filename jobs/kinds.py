"""Built-in job kinds of the engine itself."""
from __future__ import annotations

import time

from jobs.registry import job_kind


class PingFailure(Exception):
    """The failure `diagnostics.ping` raises on purpose, to exercise retries and alerting."""


@job_kind("diagnostics.ping", queue="default", max_attempts=3, timeout=120, backoff=1.0)
def ping(ctx, *, seconds: float = 0.0, steps: int = 1, fail_times: int = 0) -> dict:
    """Check workers end to end after a deploy: sleeps `seconds` over `steps` progress reports and
    fails its first `fail_times` attempts."""
    steps = max(1, steps)
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        ctx.progress(100 * step / steps, f"step {step} of {steps}")
    if ctx.attempt.number <= fail_times:
        raise PingFailure(f"failing on purpose (attempt {ctx.attempt.number} of {fail_times} planned failures)")
    return {"pong": True, "attempt": ctx.attempt.number, "worker": ctx.attempt.worker_name}
