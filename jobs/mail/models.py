"""The email ledger: one row per message, claimed before it is sent, so no message goes out twice."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, new_job_id


class EmailState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown (not re-sent)"


UNSENT = (EmailState.PENDING, EmailState.FAILED)
SETTLED = (EmailState.SENT, EmailState.FAILED, EmailState.UNKNOWN)


class OutboundEmail(models.Model):
    """A message as it will be (or was) sent: rendered once, so every retry sends the same bytes.

    The id is also the Message-ID's local part, so a retry after a lost reply carries the same
    Message-ID and receivers can tell it is the same message.
    """

    id = models.UUIDField(primary_key=True, default=new_job_id, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+", help_text="Empty for the system's own mail.")
    key = models.CharField(max_length=200, help_text="Idempotency key: one message per tenant and key.")
    from_email = models.CharField(max_length=254)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=998)
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    template = models.CharField(max_length=100, blank=True, default="")
    state = models.CharField(max_length=16, choices=EmailState.choices, default=EmailState.PENDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="The email.send job delivering it.")
    bulk = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             db_index=False, help_text="The email.bulk job it belongs to.")
    sends = models.PositiveIntegerField(default=0, help_text="Times it was handed to the mail server.")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], condition=Q(tenant__isnull=False),
                                    name="email_unique_key_per_tenant"),
            models.UniqueConstraint(fields=["key"], condition=Q(tenant__isnull=True), name="email_unique_system_key"),
        ]
        indexes = [models.Index(fields=["bulk", "state"], name="email_bulk_state", condition=Q(bulk__isnull=False))]

    def __str__(self) -> str:
        return f"{self.subject!r} to {', '.join(self.to)}"
