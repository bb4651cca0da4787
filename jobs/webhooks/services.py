"""Writes for webhooks: endpoints (secrets made, rotated), messages sent, deliveries recorded."""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs import GiveUp, RetryAfter, enqueue
from jobs.mail.services import email_send
from jobs.maintenance import delete_in_batches
from jobs.models import Source
from jobs.webhooks import destination, signing
from jobs.webhooks.models import MessageState, WebhookDelivery, WebhookEndpoint, WebhookMessage, new_secret
from tenants.selectors import tenant_admin_emails

logger = logging.getLogger(__name__)

DELIVER_KIND = "webhooks.deliver"
EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
RETRY_AFTER_MAX = 24 * 3600.0


class DeliveryFailed(Exception):
    """The endpoint did not take the message (the delivery record says how); it is retried."""


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new signing secret; the old one keeps signing alongside for WEBHOOKS_SECRET_GRACE_HOURS.
    Returns the new secret, which is shown once and never again."""
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(hours=settings.WEBHOOKS_SECRET_GRACE_HOURS)
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint.secret


def webhook_send(*, tenant, event_type: str, payload: dict[str, Any], user=None,
                 source: str = Source.SIGNAL) -> list[WebhookMessage]:
    """Store one message per active endpoint of `tenant` that receives `event_type`, each with its own
    `webhooks.deliver` job, in the caller's transaction."""
    if not EVENT_TYPE.match(event_type or ""):
        raise ValidationError({"event_type": ["Use lowercase letters, digits, '.', '_' or '-' (at most 100)."]})
    now = timezone.now()
    try:
        body = json.dumps({"type": event_type, "timestamp": now.isoformat(), "data": payload},
                          allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError({"payload": [f"Not JSON-serialisable: {exc}."]}) from None
    if len(body) > settings.WEBHOOKS_MAX_BODY_BYTES:
        raise ValidationError({"payload": [f"Is {len(body)} bytes as JSON; the limit is "
                                           f"{settings.WEBHOOKS_MAX_BODY_BYTES} bytes."]})
    messages = []
    with transaction.atomic():
        for endpoint in WebhookEndpoint.objects.filter(tenant=tenant, active=True):
            if endpoint.receives(event_type):
                messages.append(_message_create(endpoint=endpoint, event_type=event_type, body=body, user=user,
                                                source=source))
    return messages


def webhook_resend(*, message: WebhookMessage, user=None) -> WebhookMessage:
    """Deliver a message again (same id, same body): a new job, new delivery records."""
    if not message.endpoint.active:
        raise ValidationError({"endpoint": ["The endpoint is disabled; enable it before resending."]})
    with transaction.atomic():
        message.state = MessageState.PENDING
        message.job = enqueue(DELIVER_KIND, tenant=message.tenant, payload={"message": message.pk}, user=user,
                              source=Source.ADMIN)
        message.save(update_fields=["state", "job"])
    return message


def _message_create(*, endpoint: WebhookEndpoint, event_type: str, body: str, user, source: str) -> WebhookMessage:
    message = WebhookMessage.objects.create(tenant_id=endpoint.tenant_id, endpoint=endpoint, event_type=event_type,
                                            body=body)
    message.job = enqueue(DELIVER_KIND, tenant=endpoint.tenant, payload={"message": message.pk}, user=user,
                          source=source)
    message.save(update_fields=["job"])
    return message


def webhook_deliver(*, message: WebhookMessage, attempt: int, final_attempt: bool) -> dict[str, Any]:
    """POST the message to its endpoint once and record the delivery; the body of `webhooks.deliver`.

    2xx delivers it. 410 Gone disables the endpoint. Anything else is retried on the kind's schedule
    (at least as late as a Retry-After asks); an endpoint failing for WEBHOOKS_DISABLE_AFTER_HOURS
    without a success is disabled and its tenant's admins are told by email.
    """
    endpoint = message.endpoint
    if not endpoint.active:
        _message_settle(message, MessageState.FAILED)
        raise GiveUp(f"The endpoint is disabled ({endpoint.disabled_reason or 'by staff'}); not delivered.")
    now = timezone.now()
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message.pk,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(secrets=endpoint.signing_secrets(now), message_id=message.pk,
                                                      timestamp=timestamp, body=message.body),
    }
    reply = destination.destination_post(endpoint.url, body=message.body.encode(), headers=headers)
    succeeded = reply.status_code is not None and 200 <= reply.status_code < 300 and not reply.error
    WebhookDelivery.objects.create(
        message=message, attempt=attempt, url=endpoint.url, request_headers=headers, status_code=reply.status_code,
        duration_ms=reply.duration_ms, response_excerpt=reply.excerpt, error=reply.error, succeeded=succeeded,
    )
    if succeeded:
        _message_settle(message, MessageState.DELIVERED)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None, last_success_at=timezone.now())
        return {"status_code": reply.status_code, "duration_ms": reply.duration_ms}
    return _failed(message, endpoint, reply, final_attempt)


def _failed(message: WebhookMessage, endpoint: WebhookEndpoint, reply: destination.Reply, final_attempt: bool):
    summary = reply.error or f"HTTP {reply.status_code}"
    if reply.status_code == 410:
        _message_settle(message, MessageState.FAILED)
        endpoint_disable(endpoint=endpoint, reason="The receiver answered 410 Gone.")
        raise GiveUp(f"{summary}: the receiver says the endpoint is gone; it is disabled.")
    if reply.refused:
        _message_settle(message, MessageState.FAILED)
        raise GiveUp(summary)
    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    endpoint.refresh_from_db(fields=["failing_since"])
    failing_for = now - endpoint.failing_since
    if failing_for >= timedelta(hours=settings.WEBHOOKS_DISABLE_AFTER_HOURS):
        _message_settle(message, MessageState.FAILED)
        endpoint_disable(endpoint=endpoint, reason=f"Failing without a success since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC.",
                         notify=True)
        raise GiveUp(f"{summary}; the endpoint has failed for {failing_for} and is disabled.")
    if final_attempt:
        _message_settle(message, MessageState.FAILED)
    wait = _retry_after(reply)
    if wait is not None:
        raise RetryAfter(f"{summary}; the receiver asked to wait {int(wait)} s.", seconds=wait)
    raise DeliveryFailed(summary)


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, notify: bool = False) -> bool:
    """Disable an endpoint (once); with `notify`, email its tenant's admins. True if this call disabled it."""
    now = timezone.now()
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
        active=False, disabled_at=now, disabled_reason=reason[:300])
    if disabled and notify:
        _notify_admins(endpoint, reason, now)
    return bool(disabled)


def _notify_admins(endpoint: WebhookEndpoint, reason: str, now) -> None:
    addresses = tenant_admin_emails(tenant=endpoint.tenant)
    if not addresses:
        logger.warning("Webhook endpoint %s disabled; tenant %s has no admin with an email address",
                       endpoint.pk, endpoint.tenant_id)
        return
    email_send(tenant=endpoint.tenant, to=addresses, template="webhook_disabled", source=Source.JOB,
               key=f"webhook-disabled:{endpoint.pk}:{now:%Y%m%d%H%M%S}",
               context={"tenant_name": endpoint.tenant.name, "url": endpoint.url, "reason": reason,
                        "admin_url": settings.SITE_URL.rstrip("/") + f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/"})


def _message_settle(message: WebhookMessage, state: str) -> None:
    WebhookMessage.objects.filter(pk=message.pk).update(state=state)
    message.state = state


def _retry_after(reply: destination.Reply) -> float | None:
    value = (reply.headers or {}).get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (when - timezone.now()).total_seconds()), RETRY_AFTER_MAX)


def deliveries_delete_expired(now: datetime) -> Counter:
    """Retention for delivery records (a maintenance cleaner): JOBS_RETENTION_DELIVERIES_DAYS."""
    cutoff = now - timedelta(days=settings.JOBS_RETENTION_DELIVERIES_DAYS)
    return delete_in_batches(WebhookDelivery.objects.filter(created_at__lt=cutoff), "message__tenant_id")
