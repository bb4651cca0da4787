"""What the benchmarks run: a no-op as a bare RQ function and as a tracked job kind."""
from __future__ import annotations

from jobs import job_kind


def noop(x: int) -> int:
    return x + 1


@job_kind("bench.noop", max_attempts=1, timeout=60)
def tracked_noop(ctx, *, x: int) -> int:
    return x + 1
