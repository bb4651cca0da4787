"""How a job's status, progress and attempts look wherever the admin shows them. The spans carry the job
id (`data-live-job`) so that pages refresh them in place (admin/jobs/live_refresh.html)."""
from __future__ import annotations

from datetime import timedelta

from django.utils.html import format_html
from django.utils.timesince import timeuntil
from django.utils.timezone import localtime, now

from jobs.models import Job, Status
from jobs.registry import kind_registered

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
    """The bar while a job can still move; once it failed or was cancelled, where it got to, never a full
    bar; while it waits to retry, when its next attempt is due."""
    if job.status == Status.RETRYING:
        return format_html('<span class="job-progress" data-live-job="{}">{}</span>', job.pk, next_attempt_html(job))
    if job.status in (Status.FAILED, Status.CANCELLED):
        if not job.attempts and not job.progress:  # ended before it ran: what it waited for is no longer news
            return format_html('<span class="job-progress job-progress-ended" data-live-job="{}">not started</span>',
                               job.pk)
        reached = f"stopped at {job.progress}%" if job.progress else "no progress"
        return format_html('<span class="job-progress job-progress-ended" data-live-job="{}">{}{}</span>', job.pk,
                           reached, f" ({job.progress_message})" if job.progress_message else "")
    left = job.time_left()
    return format_html('<span class="job-progress" data-live-job="{}"><progress max="100" value="{}" title="{}%">'
                       '</progress> {}{}</span>', job.pk, job.progress, job.progress,
                       format_html("<small>{} left</small> ", about(left)) if left else "", job.progress_message)


def about(span: timedelta) -> str:
    """'about 40 s', 'about 3 min', 'about 2 h 10 min': an estimate, said as one."""
    seconds = round(span.total_seconds())
    if seconds < 60:
        return f"about {max(seconds, 1)} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


def next_attempt_html(job: Job) -> str:
    """'next attempt in 2 hours, 40 minutes', the exact time and zone on hover."""
    if job.run_at is None:
        return "next attempt: when a worker is free"
    exact = localtime(job.run_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    if job.run_at <= now():
        return format_html('<span title="{}">next attempt due now</span>', exact)
    return format_html('<span title="{}">next attempt in {}</span>', exact, timeuntil(job.run_at, depth=2))


def attempts_html(job: Job) -> str:
    """"4/6": attempts made, attempts allowed; after a manual retry (which allows the kind's number again
    on top of those made) it says so, on the page and on hover."""
    kind = kind_registered(job.kind)
    per_run = kind.max_attempts if kind is not None else job.max_attempts
    title = f"{job.attempts} attempt{'s' if job.attempts != 1 else ''} made, {job.max_attempts} allowed"
    if job.max_attempts <= per_run:
        return format_html('<span class="job-attempts" data-live-job="{}" title="{}">{}/{}</span>', job.pk, title,
                           job.attempts, job.max_attempts)
    title += (f": {job.kind} allows {per_run}, and a manual retry after attempt {job.max_attempts - per_run} "
              f"allowed {per_run} more")
    return format_html('<span class="job-attempts" data-live-job="{}" title="{}">{}/{} <small>(retried by staff)'
                       '</small></span>', job.pk, title, job.attempts, job.max_attempts)
