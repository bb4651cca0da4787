"""A report or export: what was asked for, by whom, and the file it produced (kept until it expires)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    CSV = "csv", "CSV"
    JSON = "json", "JSON"
    JSONL = "jsonl", "JSON Lines"


class ReportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class Report(models.Model):
    """One requested report. Its progress lives on its Job; its file in the reports storage."""

    # Random, not time-ordered: the id appears in download URLs.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="reports", db_index=False)
    type = models.CharField(max_length=100)
    format = models.CharField(max_length=8, choices=ReportFormat.choices)
    title = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    notify = models.BooleanField(default=False, help_text="Email the requester a link when it is ready.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", db_index=False)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            db_index=False)
    state = models.CharField(max_length=16, choices=ReportState.choices, default=ReportState.QUEUED)
    error = models.TextField(blank=True, default="")

    # The file: a name in the reports storage, under the tenant's own folder.
    path = models.CharField(max_length=500, blank=True, default="")
    filename = models.CharField(max_length=200, blank=True, default="", help_text="Offered to the downloader.")
    content_type = models.CharField(max_length=100, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    rows = models.BigIntegerField(null=True, blank=True, help_text="Data rows written, over all tables.")
    checksum = models.CharField(max_length=64, blank=True, default="", help_text="SHA-256 of the file, hex.")

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The file is deleted after this.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="report_tenant_created"),
            # The daily cleanup's question: which files have expired?
            models.Index(fields=["expires_at"], name="report_ready_expiry", condition=Q(state="ready")),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_ready(self) -> bool:
        return self.state == ReportState.READY and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def is_finished(self) -> bool:
        return self.state in (ReportState.READY, ReportState.FAILED, ReportState.EXPIRED)
