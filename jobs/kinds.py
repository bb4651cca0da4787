"""Built-in job kinds of the engine itself."""
from __future__ import annotations

import time

from jobs import stats
from jobs.registry import job_kind


class PingFailure(Exception):
    """The failure `diagnostics.ping` raises on purpose, to exercise retries and alerting."""


@job_kind("diagnostics.ping", queue="default", max_attempts=3, timeout=120, backoff=1.0, public=True,
          repeat_min_seconds=10)
def ping(ctx, *, seconds: float = 0.0, steps: int = 1, fail_times: int = 0) -> dict:
    """Check workers end to end after a deploy: sleeps `seconds` over `steps` progress reports and
    fails its first `fail_times` attempts."""
    steps = max(1, steps)
    ctx.log(f"ping on {ctx.attempt.worker_name}: {steps} step(s) over {seconds:g} s")
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        ctx.progress(100 * step / steps, f"step {step} of {steps}")
        ctx.log(f"step {step} of {steps} done")
    if ctx.attempt.number <= fail_times:
        ctx.log(f"failing on purpose: attempt {ctx.attempt.number} of {fail_times} planned failures", "warning")
        raise PingFailure(f"failing on purpose (attempt {ctx.attempt.number} of {fail_times} planned failures)")
    return {"pong": True, "attempt": ctx.attempt.number, "worker": ctx.attempt.worker_name}


@job_kind("jobs.staff_action", queue="high", max_attempts=2, timeout=3600, backoff=5.0)
def staff_action(ctx, *, event: int, days: int | None = None) -> dict:
    """Carry out a staff action on a large selection of jobs (recorded as an audit event), with progress."""
    from jobs import selectors, staff
    from jobs.models import AuditEvent

    record = AuditEvent.objects.select_related("actor").get(pk=event)
    actor = record.actor
    try:
        if actor is None or not actor.is_active or not actor.is_staff:
            raise PermissionError(f"{record.actor_name} can no longer act as staff; nothing was done.")
        jobs = selectors.job_selection(user=actor, selection=record.selection)
        record = staff.staff_jobs_act(
            action=record.action, user=actor, jobs=jobs, days=days, event=record,
            progress=lambda seen, total: ctx.progress(100 * seen / total, f"{seen} of {total} jobs"),
        )
    except Exception as exc:
        # A refused actor or a selection the job list does not know will not change on a second attempt.
        final = isinstance(exc, (PermissionError, ValueError)) or ctx.attempt.number >= ctx.job.max_attempts
        staff.staff_action_failed(event=record, error=f"{type(exc).__name__}: {exc}", final=final)
        raise
    return {"done": record.done, "skipped": record.skipped, "refused": record.refused, "outcome": record.outcome}


@job_kind("maintenance.cleanup", queue="low", system=True, max_attempts=3, timeout=3600, backoff=300.0)
def cleanup(ctx) -> dict:
    """Delete finished jobs past their tenant's retention (pinned ones are kept), with their attempts,
    and expired delivery records; runs daily by itself. The result counts deletions per tenant."""
    from jobs.maintenance import retention_cleanup

    return retention_cleanup(progress=lambda message: ctx.progress(0, message))


@job_kind(stats.SUMMARIZE_KIND, queue="low", system=True, max_attempts=3, timeout=1800, backoff=60.0)
def stats_summarize(ctx) -> dict:
    """Summarize the finished days the dashboard has not summarized yet (each day once, after it ends);
    runs hourly by itself. The first run after an upgrade summarizes the last month."""
    return {"days": stats.stats_summarize()}
