"""The truth about every job: one `Job` row per unit of work, one `Attempt` row per execution."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import CharField, Q
from django.db.models.functions import Cast, Right
from django.utils import timezone

from jobs import eventlog


_last_id_time = (0, 0)  # (milliseconds, sequence) of this process's latest id


def new_job_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout), so new rows land at the end of the primary key index.

    Within one millisecond a 12-bit sequence (RFC 9562, method 1) keeps one process's ids in the order
    they were made: the relay hands held jobs over oldest first by id.
    """
    global _last_id_time
    millis = time.time_ns() // 1_000_000
    last_millis, sequence = _last_id_time
    if millis <= last_millis:
        millis, sequence = last_millis, sequence + 1
        if sequence > 0xFFF:
            millis, sequence = last_millis + 1, 0
    else:
        sequence = int.from_bytes(os.urandom(2), "big") & 0x3FF  # room to count up within the millisecond
    _last_id_time = (millis, sequence)
    rand = int.from_bytes(os.urandom(8), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= sequence << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


UNFINISHED = (Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.RUNNING, Status.RETRYING)
TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
WAITING = (Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.RETRYING)
# What counts against a tenant's concurrency limit: handed to RQ, or running.
ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

# The only legal ways into each status. `JobQuerySet.transition` refuses everything else.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    # scheduled, retrying: due, but held back (the tenant is at its concurrency limit, or paused).
    Status.PENDING: (Status.QUEUED, Status.FAILED, Status.CANCELLED, Status.SCHEDULED, Status.RETRYING),
    Status.QUEUED: (Status.PENDING, Status.SCHEDULED, Status.RETRYING),
    Status.RUNNING: (Status.QUEUED,),
    Status.SUCCEEDED: (Status.RUNNING,),
    Status.FAILED: (Status.RUNNING, Status.QUEUED),  # queued: it cannot be handed over (unknown queue)
    Status.RETRYING: (Status.RUNNING,),
    Status.CANCELLED: (Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.RETRYING, Status.RUNNING),
    # running: a handler that snoozed; cancelled: a chain's later steps, reopened when its failed step is retried
    Status.SCHEDULED: (Status.RUNNING, Status.CANCELLED),
}


DEFAULT_PRIORITY = 5
PRIORITIES = range(1, 11)


class Source(models.TextChoices):
    VIEW = "view", "View"
    SIGNAL = "signal", "Signal"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SCHEDULE = "schedule", "Schedule"
    CLI = "cli", "Command line"
    JOB = "job", "Another job"
    TASK = "task", "Django task"


class Trigger(models.TextChoices):
    FIRST = "first", "First run"
    RETRY = "retry", "Automatic retry"
    MANUAL = "manual", "Manual retry"
    RESCUE = "rescue", "Rescue"
    SNOOZE = "snooze", "After a snooze"


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    ABANDONED = "abandoned", "Abandoned"
    STOPPED = "stopped", "Stopped"
    SNOOZED = "snoozed", "Snoozed"


SHORT_ID_LENGTH = 8

# What varies between two occurrences of the same failure: ids, numbers, quoted values, addresses.
_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "<email>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
]


def normalise_error(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text[:300]


def error_fingerprint(*, kind: str, error_type: str, message: str) -> str:
    """Failures alike up to ids and numbers share a fingerprint: kind, exception type, normalised message."""
    basis = f"{kind}\0{error_type}\0{normalise_error(message)}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def short_id_expression():
    """The last characters of the id as text: what the admin shows, and an index makes searchable."""
    return Right(Cast("id", output_field=CharField()), SHORT_ID_LENGTH)


class JobQuerySet(models.QuerySet["Job"]):
    def transition(self, to: str, **fields) -> int:
        """Compare-and-swap: move the matching rows that may legally reach `to`; return how many moved."""
        return self.filter(status__in=ALLOWED_FROM[to]).update(status=to, updated_at=timezone.now(), **fields)

    def transition_logged(self, to: str, *, reason: str = "", **fields) -> int:
        """`transition`, with a state-change log line per moved row (jobs.eventlog): for the rarer paths
        (recoveries, holds, chain stops), as it reads and locks the rows first when logging is on."""
        if not eventlog.events.isEnabledFor(logging.INFO):
            return self.transition(to, **fields)
        with transaction.atomic():
            rows = list(self.filter(status__in=ALLOWED_FROM[to]).select_for_update(of=("self",))
                        .values_list(*eventlog.ROW_FIELDS))
            moved = Job.objects.filter(pk__in=[row[0] for row in rows]).transition(to, **fields)
        extra = {"reason": reason} if reason else {}
        transaction.on_commit(lambda: eventlog.jobs_changed(rows, status=to, **extra), robust=True)
        return moved

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=UNFINISHED)

    def due(self, now) -> JobQuerySet:
        """Rows the relay may hand to RQ now."""
        return self.filter(
            Q(status=Status.PENDING) | Q(status__in=(Status.SCHEDULED, Status.RETRYING), run_at__lte=now)
        )


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=new_job_id, editable=False)
    # FK indexes are off where a composite index already leads with the column or nothing looks rows up
    # by it: every status change rewrites every index of the row, so each one costs on every job.
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs", db_index=False,
        help_text="Empty for system jobs, which only superusers see.",
    )
    kind = models.CharField(max_length=100)
    queue = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True, default="")

    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout = models.PositiveIntegerField(default=300, help_text="Seconds per attempt.")

    run_at = models.DateTimeField(null=True, blank=True, help_text="When a scheduled or retrying job is due.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last hand-over to RQ.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="Start of the latest attempt.")
    finished_at = models.DateTimeField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # db_default: during a rolling deploy, processes still on the previous release insert rows
    # without this column.
    error_fingerprint = models.CharField(
        max_length=16, blank=True, default="", db_default="",
        help_text="Groups failures alike (kind, exception type, message without ids and numbers).",
    )

    enqueued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.VIEW)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    # The request that enqueued it (X-Request-ID), carried by the jobs its handler enqueues; in logs.
    request_id = models.CharField(max_length=64, blank=True, default="", db_default="")

    # What starts the next attempt, copied onto that Attempt when it is claimed.
    next_trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.FIRST)
    next_triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(
        default=DEFAULT_PRIORITY, db_default=DEFAULT_PRIORITY,
        help_text="1 to 10: among a queue's waiting jobs, higher goes first (5 is the default).")
    pinned = models.BooleanField(default=False, db_default=False,
                                 help_text="Kept past its tenant's retention period.")
    # Nullable without a default, so the previous release's inserts keep working during a deploy.
    batch = models.ForeignKey("Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="members",
                              db_index=False, help_text="The batch or chain this job belongs to.")
    batch_position = models.PositiveIntegerField(null=True, blank=True, help_text="Its step in a chain (from 1).")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Ids are time-ordered, so `-id` is newest first: the admin's order, served by these indexes.
            models.Index(fields=["tenant", "status", "id"], name="job_tenant_status_id"),
            models.Index(fields=["status", "updated_at"], name="job_status_updated"),
            models.Index(fields=["kind"], name="job_kind"),
            models.Index(short_id_expression(), name="job_short_id"),
            # Failure triage groups from this index alone; only failed and retrying rows are in it.
            models.Index(fields=["error_fingerprint", "updated_at"], name="job_failure_fingerprint",
                         include=["status", "kind", "tenant"], condition=Q(status__in=("failed", "retrying"))),
            # Only the rows the relay waits on: small, so cheap to keep up to date.
            models.Index(fields=["run_at"], name="job_due_run_at",
                         condition=Q(status__in=("scheduled", "retrying"))),
            # A batch's members, for its counts and its completion check; only batch jobs are in it.
            models.Index(fields=["batch", "status"], name="job_batch_status", condition=Q(batch__isnull=False)),
            # Jobs held back per tenant (over its concurrency limit, paused, or Redis down), in the order
            # the relay hands them over: one range scan per queue.
            models.Index(fields=["tenant", "queue", "-priority", "id"], name="job_pending_by_tenant",
                         condition=Q(status="pending")),
            # The same by kind, for kinds limited across tenants: each tenant's next few in one range scan.
            models.Index(fields=["kind", "tenant", "-priority", "id"], name="job_pending_by_kind",
                         condition=Q(status="pending")),
            # The fairness count: a tenant's (and kind's) queued and running jobs, after every few
            # attempts. In the composite index above that range fills with dead entries as jobs pass
            # through it (a count read thousands of pages mid-backlog); this small one stays compact.
            models.Index(fields=["tenant", "kind"], name="job_active_by_tenant",
                         condition=Q(status__in=("queued", "running"))),
        ]
        constraints = [
            # One unfinished job per idempotency key; the database enforces it, not a check-then-insert.
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False, tenant__isnull=False, status__in=UNFINISHED),
                name="job_unique_unfinished_key_per_tenant",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False, tenant__isnull=True, status__in=UNFINISHED),
                name="job_unique_unfinished_system_key",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_at_most_100"),
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=10), name="job_priority_1_to_10"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.short_id}"

    @property
    def short_id(self) -> str:
        return str(self.id)[-SHORT_ID_LENGTH:]

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def time_left(self, now: datetime | None = None) -> timedelta | None:
        """For a running job that reported progress: what it still needs at the rate it has gone so far
        (its attempt's elapsed time over the share done); None when that cannot be told."""
        if self.status != Status.RUNNING or not self.started_at or not 0 < self.progress < 100:
            return None
        elapsed = (now or timezone.now()) - self.started_at
        if elapsed <= timedelta(0):
            return None
        return elapsed * (100 - self.progress) / self.progress


class Attempt(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_set", db_index=False)
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.FIRST)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    worker_name = models.CharField(max_length=200, blank=True, default="")
    hostname = models.CharField(max_length=200, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    error_type = models.CharField(max_length=200, blank=True, default="")
    # The exception's class by module path (`jobs.exceptions.WorkerLost`), where `error_type` is its name.
    error_class = models.CharField(max_length=300, blank=True, default="", db_default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="attempt_unique_number")]
        # The reconciler's question: which open attempts stopped heartbeating?
        indexes = [models.Index(fields=["heartbeat_at"], name="attempt_open_heartbeat",
                                condition=Q(ended_at__isnull=True))]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.job_id}"

    @property
    def duration(self) -> timedelta | None:
        return self.ended_at - self.started_at if self.ended_at else None


class KindRetention(models.Model):
    """A tenant's own retention for one job kind, over the kind's and the tenant's."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=100)
    succeeded_days = models.PositiveIntegerField(null=True, blank=True,
                                                 help_text="Days to keep its succeeded jobs. Empty: as before.")
    failed_days = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Days to keep its failed and cancelled jobs. Empty: as before.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="kind_retention_unique")]
        verbose_name = "retention by kind"
        verbose_name_plural = "retention by kind"

    def __str__(self) -> str:
        return f"{self.kind} ({self.tenant})"


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class AttemptLog(models.Model):
    """A line a handler wrote with `ctx.log(...)` during an attempt (at most JOBS_LOG_LINES per attempt)."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["attempt", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.level} {self.message[:60]}"


class QueueState(models.Model):
    """Operator state of an RQ queue. A paused queue's waiting jobs stay in the database until resumed."""

    name = models.CharField(max_length=32, primary_key=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused_at else 'running'})"


class StatDay(models.Model):
    """A day (UTC) whose finished jobs are summarized in DailyStat: the dashboard reads those days from
    there and only today, or a day not yet summarized, from the jobs themselves."""

    day = models.DateField(primary_key=True)
    summarized_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d}"


class DailyStat(models.Model):
    """Jobs of one tenant and kind that finished on one day (UTC): how many succeeded and failed, and how
    long they waited and ran, as counts per latency bucket (jobs.stats.LATENCY_EDGES)."""

    day = models.DateField()
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=100)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    wait = models.JSONField(default=list, help_text="Jobs per wait-time bucket, from due to start.")
    run = models.JSONField(default=list, help_text="Jobs per run-time bucket, the last attempt's.")

    class Meta:
        # One row per (day, tenant, kind): its day's StatDay is written in the same transaction.
        indexes = [models.Index(fields=["day"], name="daily_stat_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.kind}"


class Batch(models.Model):
    """Jobs started together. A batch runs its members side by side; a chain (`sequential`) runs them one
    after the other, each once the previous succeeded, and stops at a failure. When every member has
    finished, the callback kind (if any) is enqueued once, with the counts."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    sequential = models.BooleanField("chain", default=False, help_text="A chain: members run one after the other.")
    total = models.PositiveIntegerField(default=0)
    callback_kind = models.CharField(max_length=100, blank=True, default="")
    callback_payload = models.JSONField(default=dict, blank=True)
    callback_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When its last member finished.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches and chains"

    def __str__(self) -> str:
        return self.name


class AuditAction(models.TextChoices):
    RETRY = "retry", "Retry"
    RUN_NOW = "run_now", "Run now"
    CANCEL = "cancel", "Cancel"
    STOP = "stop", "Stop"
    DELETE = "delete", "Delete record"
    CLEAN = "clean", "Clean old finished jobs"
    PAUSE_QUEUE = "pause_queue", "Pause queue"
    RESUME_QUEUE = "resume_queue", "Resume queue"
    MEMBERSHIP_ADD = "membership_add", "Add member"
    MEMBERSHIP_CHANGE = "membership_change", "Change member's role"
    MEMBERSHIP_DELETE = "membership_delete", "Remove member"
    PIN = "pin", "Pin (keep past retention)"
    UNPIN = "unpin", "Unpin"
    RESEND = "resend", "Resend"
    ROTATE_SECRET = "rotate_secret", "Rotate webhook secret"
    SCHEDULE_ADD = "schedule_add", "Add schedule"
    SCHEDULE_CHANGE = "schedule_change", "Change schedule"
    SCHEDULE_DELETE = "schedule_delete", "Delete schedule"
    SCHEDULE_PAUSE = "schedule_pause", "Pause schedule"
    SCHEDULE_RESUME = "schedule_resume", "Resume schedule"
    SCHEDULE_RUN_NOW = "schedule_run_now", "Run schedule now"
    TENANT_PAUSE = "tenant_pause", "Pause a tenant's work"
    TENANT_RESUME = "tenant_resume", "Resume a tenant's work"
    BATCH_RETRY = "batch_retry", "Retry a batch's failed members"
    API_TOKEN_CREATE = "api_token_create", "Create API token"
    API_TOKEN_REVOKE = "api_token_revoke", "Revoke API token"
    RQ_REMOVE = "rq_remove", "Remove RQ jobs without a record from Redis"
    API_WRITE = "api_write", "Write through the API"
    WORKER_STOP = "worker_stop", "Stop a worker"
    START = "start", "Start a job"
    CLONE = "clone", "Clone a job"
    RETENTION_CHANGE = "retention_change", "Change retention by kind"
    API_READ = "api_read", "Read through the API (platform token)"


class AuditState(models.TextChoices):
    RUNNING = "running", "Running in the background"
    DONE = "done", "Done"
    PARTIAL = "partial", "Done in part"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"


class AuditEvent(models.Model):
    """One staff action: who, when, what, on which jobs (or which filter and how many), why, and how it went.

    Written by the services, never edited: the admin shows it read-only.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", help_text="Set when the action concerns one tenant.")
    target = models.CharField(max_length=255, blank=True, default="",
                              help_text="What was acted on, in words: a queue, a member, a filter.")
    selection = models.TextField(blank=True, default="",
                                 help_text="The admin filter the action applied to, when it was not a hand-picked list.")
    reason = models.TextField(blank=True, default="")
    requested = models.PositiveIntegerField(default=0, help_text="Jobs in the selection.")
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Not in a state the action applies to.")
    refused = models.PositiveIntegerField(default=0, help_text="In tenants where the actor's role does not allow it.")
    state = models.CharField(max_length=16, choices=AuditState.choices, default=AuditState.DONE)
    outcome = models.TextField(blank=True, default="")
    background_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                       help_text="The tracked job doing a large action's work.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_name} at {self.created_at:%Y-%m-%d %H:%M}"


class AuditEventJob(models.Model):
    """Which jobs an audit event touched. A plain id, not a foreign key: the record outlives deleted jobs."""

    event = models.ForeignKey(AuditEvent, on_delete=models.CASCADE, related_name="touched")
    job_id = models.UUIDField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "job_id"], name="audit_event_job_unique")]
