"""Incidents: one row per time a health check crossed its threshold, open until it recovers."""
from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Incident(models.Model):
    """A check (waiting jobs, failures, workers, ...) over its threshold, from when the alert check first
    saw it until it saw it clear. Global, not tenant data: superusers only. Operators are told once
    when it opens and once when it is resolved."""

    check_name = models.CharField("check", max_length=32)
    summary = models.CharField(max_length=300, help_text="What the check found when the incident opened.")
    value = models.FloatField(null=True, blank=True, help_text="The checked value when it opened.")
    threshold = models.FloatField(null=True, blank=True)
    peak_value = models.FloatField(null=True, blank=True, help_text="The highest value seen while open.")
    last_summary = models.CharField(max_length=300, blank=True, default="", help_text="The latest check's finding.")
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now, help_text="The latest check that found it crossed.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True, default="",
                                  help_text="What the check found when it cleared.")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # Two alert checks running at once cannot open the same incident twice (nor tell twice).
            models.UniqueConstraint(fields=["check_name"], condition=Q(resolved_at__isnull=True),
                                    name="ops_incident_one_open_per_check"),
        ]

    def __str__(self) -> str:
        return f"{self.check_name} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def duration(self) -> timedelta:
        return (self.resolved_at or timezone.now()) - self.opened_at
