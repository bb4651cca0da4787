"""Webhook endpoints (per tenant), the messages sent to them, and a record of every delivery attempt."""
from __future__ import annotations

import base64
import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, new_job_id

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    return f"msg_{new_job_id().hex}"


class WebhookEndpoint(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000, help_text="HTTPS address that receives POSTed events.")
    description = models.CharField(max_length=200, blank=True, default="")
    events = models.JSONField(default=list, blank=True,
                              help_text="Event types it receives; empty means every event.")
    active = models.BooleanField(default=True)
    # The signing key has to be readable to sign with; it is never shown after it was created or rotated.
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False,
                                         help_text="First failure of the current run of failures.")
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, default="", editable=False)

    class Meta:
        ordering = ["tenant__name", "url"]
        indexes = [models.Index(fields=["tenant"], name="webhook_endpoint_active", condition=Q(active=True))]

    def __str__(self) -> str:
        return self.description or self.url

    def receives(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def signing_secrets(self, now) -> list[str]:
        """The current secret, and the previous one while its grace period lasts."""
        keys = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            keys.append(self.previous_secret)
        return keys


class MessageState(models.TextChoices):
    PENDING = "pending", "Being delivered"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookMessage(models.Model):
    """One event for one endpoint. Its id is the `webhook-id` header, the same on every attempt."""

    id = models.CharField(max_length=40, primary_key=True, default=new_message_id, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    event_type = models.CharField(max_length=100)
    body = models.TextField(help_text="The JSON sent, byte for byte the same on every attempt.")
    state = models.CharField(max_length=16, choices=MessageState.choices, default=MessageState.PENDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="The webhooks.deliver job.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="webhook_message_tenant")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class WebhookDelivery(models.Model):
    """One attempt to deliver a message: what was sent (headers without the secret) and what came back."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"attempt {self.attempt}"
