"""The email job kinds."""
from __future__ import annotations

from jobs import GiveUp, Snooze, job_kind
from jobs.models import Trigger


@job_kind("email.send", queue="high", max_attempts=5, timeout=120, backoff=30.0, backoff_max=3600.0)
def send(ctx, *, email: str) -> dict:
    """Send one stored message (jobs.mail.models.OutboundEmail) at most once."""
    from jobs.mail.models import OutboundEmail
    from jobs.mail.services import email_deliver

    message = OutboundEmail.objects.filter(pk=email).first()
    if message is None:
        raise GiveUp(f"Message {email} no longer exists.")
    return email_deliver(message=message, final_attempt=ctx.attempt.number >= ctx.job.max_attempts)


@job_kind("email.bulk", queue="default", max_attempts=1, timeout=600)
def bulk(ctx, *, template: str, count: int) -> dict:
    """Fan a bulk send out into email.send jobs, then wait (snoozing, not holding a worker) until every
    message is settled. Fails if any message failed; retrying it sends only the failed messages again."""
    from jobs.mail.services import email_bulk_counts, email_bulk_fan_out

    if ctx.attempt.trigger != Trigger.SNOOZE:
        email_bulk_fan_out(bulk=ctx.job)
    counts = email_bulk_counts(bulk=ctx.job)
    total = sum(counts.values()) or 1
    waiting = counts["pending"] + counts["sending"]
    settled = total - waiting
    summary = f"{counts['sent']} sent, {counts['failed']} failed, {counts['unknown']} unknown, {waiting} pending"
    ctx.progress(100 * settled / total, summary)
    if waiting:
        raise Snooze(summary, seconds=min(30.0, 2.0 ** min(ctx.attempt.number, 5)))
    if counts["failed"] or counts["unknown"]:
        raise GiveUp(f"{summary}. Retry this job to send the failed messages again.")
    return counts
