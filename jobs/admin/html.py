"""How a job's status, progress and attempts look wherever the admin shows them. The spans carry the job
id (`data-live-job`) so that pages refresh them in place (admin/jobs/live_refresh.html)."""
from __future__ import annotations

from django.utils.html import format_html

from jobs.models import Job, Status

STATUS_COLOURS = {
    Status.PENDING: "#6c757d", Status.SCHEDULED: "#6f42c1", Status.QUEUED: "#0d6efd",
    Status.RUNNING: "#0a8aa8", Status.RETRYING: "#c35a00", Status.SUCCEEDED: "#198754",
    Status.FAILED: "#dc3545", Status.CANCELLED: "#6c757d",
}
LIVE_LIMIT = 200


def status_badge_html(job: Job) -> str:
    return format_html(
        '<span class="job-status" data-live-job="{}" data-status="{}" '
        'style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
        job.pk, job.status, STATUS_COLOURS.get(job.status, "#333"), job.get_status_display(),
    )


def progress_html(job: Job) -> str:
    return format_html('<span class="job-progress" data-live-job="{}"><progress max="100" value="{}" title="{}%">'
                       '</progress> {}</span>', job.pk, job.progress, job.progress, job.progress_message)


def attempts_html(job: Job) -> str:
    return format_html('<span class="job-attempts" data-live-job="{}">{}/{}</span>', job.pk, job.attempts,
                       job.max_attempts)
