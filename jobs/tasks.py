"""The one RQ entry point. RQ carries a Job id and nothing else; everything else is in the database."""
from __future__ import annotations

from jobs import runtime


def run_job(job_id: str) -> dict[str, str]:
    """Run the next attempt of the Job `job_id` (a tracked worker has already claimed it)."""
    found, claim, deliver = runtime.take_prepared(job_id)
    if not found:
        return runtime.run_unmanaged(job_id)
    if claim is None:
        return {"outcome": "skipped"}
    result = runtime.attempt_execute(claim)
    deliver(result)
    return runtime.raise_or_report(result)
