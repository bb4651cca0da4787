"""RQ entry points. Workers run one: `run_job`, whose only argument is a Job id; everything else is in
the database. The scheduler process runs the other: `fire_schedule`, for a cron schedule's
rq-scheduler entry (workers refuse it)."""
from __future__ import annotations

from jobs import runtime
from jobs.schedules.services import schedule_fire_due


def run_job(job_id: str) -> dict[str, str]:
    """Run the next attempt of the Job `job_id` (a tracked worker has already claimed it)."""
    found, claim, deliver, execute = runtime.take_prepared(job_id)
    if not found:
        return runtime.run_unmanaged(job_id)
    if claim is None:
        return {"outcome": "skipped"}
    result = execute(claim)
    deliver(result)
    return runtime.raise_or_report(result)


def fire_schedule(schedule_id: int) -> int:
    """Fire what is due of the schedule whose rq-scheduler entry came due; returns how many runs it made."""
    return len(schedule_fire_due(schedule_id=schedule_id))
