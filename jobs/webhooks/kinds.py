"""The webhook delivery job kind."""
from __future__ import annotations

from jobs import GiveUp, job_kind

# About three days in all: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (each +-20%).
SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


@job_kind("webhooks.deliver", queue="default", max_attempts=len(SCHEDULE) + 1, timeout=60, backoff=SCHEDULE,
          jitter=0.2)
def deliver(ctx, *, message: str) -> dict:
    """POST one signed webhook message to its endpoint; every attempt is kept as a delivery record."""
    from jobs.webhooks.models import WebhookMessage
    from jobs.webhooks.services import webhook_deliver

    stored = WebhookMessage.objects.select_related("endpoint__tenant").filter(pk=message).first()
    if stored is None:
        raise GiveUp(f"Webhook message {message} no longer exists.")
    return webhook_deliver(message=stored, attempt=ctx.attempt.number,
                           final_attempt=ctx.attempt.number >= ctx.job.max_attempts)
