"""A report whose job failed for good, or was cancelled, says so on its own row."""
from __future__ import annotations

from reports.registry import report_types
from reports.services import report_mark_ended


def _report_id(job) -> str | None:
    if job.kind in {kind.kind for kind in report_types()}:
        return (job.payload or {}).get("report")
    return None


def report_job_failed(sender, *, job, **kwargs) -> None:
    if report_id := _report_id(job):
        report_mark_ended(report_id=report_id, error=job.last_error or "The job failed.")


def report_job_cancelled(sender, *, job, **kwargs) -> None:
    if report_id := _report_id(job):
        report_mark_ended(report_id=report_id, error="Cancelled.")
