"""Incidents: one row per time a health check crossed its threshold, open until it recovers; and each
check's streak, how many alert checks in a row found it crossed or clear."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models import F, Q
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


class CheckStreak(models.Model):
    """How many alert checks in a row found a check crossed, or clear: an incident opens and resolves
    on a run of them (OPS_ALERT_OPEN_AFTER, OPS_ALERT_RESOLVE_AFTER), not on one reading, so a value
    flapping at its threshold does not open and close one every minute. One row per check."""

    check_name = models.CharField("check", max_length=32, unique=True)
    crossed = models.BooleanField(help_text="What the latest alert checks found.")
    count = models.PositiveIntegerField(help_text="How many alert checks in a row found it so.")
    since = models.DateTimeField(help_text="The first of them.")
    counted_at = models.DateTimeField(help_text="The latest of them.")

    # Alert checks run a minute apart: two closer than this are one minute's check run twice (two
    # schedulers, a manual run), which must not count as two minutes.
    SAME_CHECK = timedelta(seconds=30)

    def __str__(self) -> str:
        return f"{self.check_name} {'crossed' if self.crossed else 'clear'} on {self.count} check(s)"

    @classmethod
    def record(cls, *, check_name: str, crossed: bool, now: datetime) -> CheckStreak:
        """Count one alert check's finding and return the streak it belongs to.

        Each step is one conditional UPDATE: of two checks running at once, the second finds the row
        already turned, or counted moments ago, and counts nothing.
        """
        streak, created = cls.objects.get_or_create(
            check_name=check_name, defaults={"crossed": crossed, "count": 1, "since": now, "counted_at": now})
        if created:
            return streak
        row = cls.objects.filter(pk=streak.pk)
        if not row.exclude(crossed=crossed).update(crossed=crossed, count=1, since=now, counted_at=now):
            row.filter(counted_at__lte=now - cls.SAME_CHECK).update(count=F("count") + 1, counted_at=now)
        return row.get()
