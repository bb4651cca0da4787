"""Cron schedules and their runs. The database decides what fires; rq-scheduler only wakes the scheduler."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from jobs.models import DEFAULT_PRIORITY
from jobs.schedules import cron


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", "Skip missed runs"
    ONCE = "once", "Run once to catch up"
    ALL = "all", "Run every missed run (bounded)"


class Schedule(models.Model):
    """A job of `kind` with `payload`, fired at the times `cron` names on the wall clock of `timezone`."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="schedules", help_text="Empty for a system-wide schedule (superusers only).")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=100, help_text="The job kind each firing enqueues.")
    payload = models.JSONField(default=dict, blank=True, help_text="The job's payload, checked against the kind's schema.")
    priority = models.PositiveSmallIntegerField(
        default=DEFAULT_PRIORITY, db_default=DEFAULT_PRIORITY,
        validators=[MinValueValidator(1), MaxValueValidator(10)], help_text="Of each job it starts: 1 to 10, among the queue's waiting jobs higher goes first.")
    cron = models.CharField("cron expression", max_length=120,
                            help_text="minute hour day-of-month month day-of-week, e.g. '30 2 * * 1', or @daily; "
                                      "@every 15s for kinds that may repeat within a minute.")
    timezone = models.CharField("time zone", max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin.")
    enabled = models.BooleanField("active", default=True, help_text="Paused schedules fire nothing, and do not catch up when resumed.")
    misfire_policy = models.CharField(max_length=8, choices=MisfirePolicy.choices, default=MisfirePolicy.ONCE,
                                      help_text="What to do with runs missed while no scheduler was running.")
    start_at = models.DateTimeField(null=True, blank=True, help_text="Fire nothing before this.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="Fire nothing after this.")

    # Every fire time up to here is settled (fired, skipped or not owed); the next is after it.
    fired_through = models.DateTimeField(default=now, editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], condition=models.Q(tenant__isnull=False),
                                    name="schedule_unique_name_per_tenant",
                                    violation_error_message="This tenant already has a schedule of that name."),
            models.UniqueConstraint(fields=["name"], condition=models.Q(tenant__isnull=True),
                                    name="schedule_unique_system_name",
                                    violation_error_message="A system-wide schedule of that name exists."),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self):
        return cron.timezone_check(self.timezone)

    @property
    def description(self) -> str:
        return cron.describe(self.cron)

    def fire_times_after(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `moment` within the start and end dates (UTC)."""
        after = max(moment, self.start_at - timedelta(microseconds=1)) if self.start_at else moment
        times = []
        for fire_at in cron.fire_times(self.cron, self.tz, after=after, until=self.end_at):
            times.append(fire_at)
            if len(times) == count:
                break
        return times

    def compute_next_fire_at(self) -> datetime | None:
        upcoming = self.fire_times_after(self.fired_through, 1) if self.enabled else []
        return upcoming[0] if upcoming else None


class RunOutcome(models.TextChoices):
    FIRED = "fired", "Fired on time"
    CAUGHT_UP = "caught_up", "Fired late (catch-up)"
    MANUAL = "manual", "Run now"
    SKIPPED = "skipped", "Skipped (missed)"
    ERROR = "error", "Could not enqueue"


class ScheduleRun(models.Model):
    """One firing of a schedule. (schedule, fire_at) is unique: a second scheduler, a restart or a clock
    jump that tries the same firing again fails to insert it, so no firing ever makes two jobs."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    fire_at = models.DateTimeField(help_text="The fire time this run is for (for 'run now', when it was asked).")
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices)
    # No foreign key constraint and no cascade: retention deletes old jobs in batches and must not
    # have to touch this table; a run whose job is gone says so.
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                            related_name="+")
    missed = models.PositiveIntegerField(default=0, help_text="Earlier fire times this run stands in for or skipped.")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=now)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["-fire_at"]
        constraints = [models.UniqueConstraint(fields=["schedule", "fire_at"], name="schedule_run_unique_fire_time")]

    def __str__(self) -> str:
        return f"{self.schedule} at {self.fire_at:%Y-%m-%d %H:%M}"
