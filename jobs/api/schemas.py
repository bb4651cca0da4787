"""What the API reads and writes, as pydantic schemas: these are also its published OpenAPI schema.

The enqueue body is one schema per public kind (a union on `kind`), each with that kind's own payload
schema, so the published schema says exactly which payloads are accepted.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from django.conf import settings
from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from jobs.api.selectors import CURSOR_PATTERN
from jobs.models import Attempt, Job, Status
from jobs.registry import Kind

# PostgreSQL text cannot hold NUL: refused as a field error rather than failing in the database.
TEXT = r"^[^\x00]*$"
CURSOR = CURSOR_PATTERN
KEY = r"^[^\x00\s][^\x00]*$"
PATTERN_MESSAGES = {
    TEXT: "Must not contain the NUL character (\\u0000).",
    CURSOR: "Not a cursor this API handed out; use next_cursor from the previous page.",
    KEY: "Must start with a visible character and not contain the NUL character (\\u0000).",
}
DELAY_MAX_SECONDS = 10 * 365 * 86400
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,6})?([Zz]|[+-]\d\d:\d\d)")


def _date_time(value: Any) -> Any:
    """RFC 3339 text only (pydantic alone would also take a number of seconds, or a bare date)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise ValueError("Give a date and time with its UTC offset, such as 2026-05-01T12:00:00Z")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("Not a valid date and time") from None


def _in_utc(value: datetime) -> datetime:
    # RFC 3339 allows any offset up to a day; PostgreSQL takes up to 15:59 and refused the rest (a 500).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of the range of dates, in UTC") from None


DateTime = Annotated[AwareDatetime, BeforeValidator(_date_time), AfterValidator(_in_utc)]


def _whole(value: Any) -> Any:
    # JSON Schema's integer is any number without a fraction: 10.0 is 10 (the strict body would refuse it).
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole)]
# Request bodies are JSON: no coercion (`false` is no number of seconds, `1` is no text).
BODY = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(Schema):
    field: str
    message: str


class ErrorBody(Schema):
    code: str = Field(description="Stable, machine-readable: unauthorized, forbidden, insufficient_scope, "
                                  "not_found, method_not_allowed, conflict, validation_error, bad_request, "
                                  "rate_limited, internal_error, ...")
    message: str
    field: str | None = Field(None, description="The field at fault (`payload.steps`, `status`, ...), if one is.")
    details: list[ErrorDetail] | None = Field(None, description="Every field error, when there are several.")


class ErrorOut(Schema):
    error: ErrorBody


class AttemptError(Schema):
    type: str
    message: str


class AttemptOut(Schema):
    number: int
    trigger: str = Field(description="first, retry, manual, rescue or snooze")
    outcome: str | None = Field(description="succeeded, failed, timed_out, abandoned, stopped, snoozed; "
                                            "null while running")
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    error: AttemptError | None

    @staticmethod
    def of(attempt: Attempt) -> AttemptOut:
        duration = attempt.duration
        error = AttemptError(type=attempt.error_type, message=attempt.error_message) if (
            attempt.error_type or attempt.error_message) else None
        return AttemptOut(number=attempt.number, trigger=attempt.trigger, outcome=attempt.outcome or None,
                          started_at=attempt.started_at, ended_at=attempt.ended_at,
                          duration_seconds=duration.total_seconds() if duration is not None else None, error=error)


class JobSummary(Schema):
    id: UUID
    short_id: str
    kind: str
    queue: str
    status: Status
    progress: int = Field(ge=0, le=100)
    progress_message: str
    attempt_count: int = Field(description="Attempts made so far.")
    max_attempts: int
    error: str | None = Field(description="The latest error (or why it was cancelled), if any.")
    source: str
    idempotency_key: str | None
    created_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None = Field(description="When a scheduled or retrying job is due.")
    duration_seconds: float | None
    priority: int = Field(description="1 to 10: among its queue's waiting jobs, higher goes first.")
    eta_seconds: float | None = Field(description="For a running job that reported progress: the seconds it "
                                                  "still needs at the rate it has gone so far; else null.")

    @classmethod
    def fields_of(cls, job: Job) -> dict[str, Any]:
        duration = job.duration
        left = job.time_left()
        return dict(id=job.pk, short_id=job.short_id, kind=job.kind, queue=job.queue, status=job.status,
                    progress=job.progress, progress_message=job.progress_message, attempt_count=job.attempts,
                    max_attempts=job.max_attempts, error=job.last_error or None, source=job.source,
                    idempotency_key=job.idempotency_key, created_at=job.created_at, enqueued_at=job.enqueued_at,
                    started_at=job.started_at, finished_at=job.finished_at, run_at=job.run_at,
                    duration_seconds=duration.total_seconds() if duration is not None else None,
                    priority=job.priority,
                    eta_seconds=round(left.total_seconds(), 1) if left is not None else None)

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(**cls.fields_of(job))


class JobDetail(JobSummary):
    payload: dict[str, Any]
    result: Any = Field(None, description="What the handler returned (JSON), once it succeeded.")
    attempts: list[AttemptOut] = Field(description="Every attempt, first first.")

    @classmethod
    def of(cls, job: Job) -> JobDetail:
        attempts = [AttemptOut.of(attempt) for attempt in job.attempt_set.all()] if job.pk else []
        return cls(**cls.fields_of(job), payload=job.payload, result=job.result, attempts=attempts)


class BatchOut(Schema):
    id: int
    name: str
    chain: bool = Field(description="A chain: members run one after the other.")
    total: int
    counts: dict[str, int] = Field(description="Members by status.")
    finished_at: datetime | None = Field(description="When its last member finished.")
    created_at: datetime
    first_job: UUID | None = Field(description="A chain's first step, or a batch's first member.")


class CleanIn(Schema):
    model_config = BODY

    days: WholeNumber = Field(ge=0, le=3650, description="Delete jobs that finished more than this many days ago.")
    statuses: list[Literal["succeeded", "failed", "cancelled"]] = Field(
        default_factory=lambda: ["succeeded", "failed", "cancelled"], min_length=1, max_length=3,
        description="Which finished jobs (all three unless given).")
    reason: str = Field("", max_length=2000, pattern=TEXT, description="Stored in the audit record.")


class ActionOut(Schema):
    """A staff action as the audit trail records it: done now (200), or running in the background (202)."""
    id: int
    action: str
    state: str = Field(description="done, partial, refused, failed, or running (in the background).")
    requested: int
    done: int
    skipped: int = Field(description="Not in a state the action applies to.")
    refused: int = Field(description="In tenants where the role does not allow it.")
    outcome: str
    background_job: UUID | None = Field(description="The job carrying it out in the background; follow it at "
                                                    "GET /jobs/{id}.")

    @classmethod
    def of(cls, event) -> ActionOut:
        return cls(id=event.pk, action=event.action, state=event.state, requested=event.requested, done=event.done,
                   skipped=event.skipped, refused=event.refused, outcome=event.outcome,
                   background_job=event.background_job_id)


class BulkOut(Schema):
    ids: list[UUID] = Field(description="The new jobs' ids, in the order of the payloads.")
    count: int


class TenantStateOut(Schema):
    slug: str
    paused: bool
    paused_at: datetime | None


class JobPage(Schema):
    items: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class JobFilters(Schema):
    status: list[Status] = Field(default_factory=list, description="One or more statuses (repeat the parameter).")
    kind: str | None = Field(None, max_length=100, pattern=TEXT)
    queue: str | None = Field(None, max_length=32, pattern=TEXT)
    created_after: DateTime | None = Field(None, description="Created at or after (with a UTC offset).")
    created_before: DateTime | None = Field(None, description="Created before (with a UTC offset).")
    has_error: bool | None = None
    q: str | None = Field(None, max_length=200, pattern=TEXT,
                          description="A job id, an 8-character short id, or text in the kind, payload or error.")
    cursor: str | None = Field(None, pattern=CURSOR, description="next_cursor of the previous page.")
    limit: int = Field(settings.API_PAGE_SIZE, ge=1, le=settings.API_PAGE_SIZE_MAX)


class ActionIn(Schema):
    model_config = BODY

    reason: str = Field("", max_length=2000, pattern=TEXT, description="Stored in the audit record.")


class QueueCounts(Schema):
    pending: int
    scheduled: int
    queued: int
    running: int
    retrying: int


class QueueOut(Schema):
    name: str
    counts: QueueCounts = Field(description="The tenant's unfinished jobs in this queue, by status.")
    waiting: int = Field(description="Pending and queued: waiting for a worker.")
    failed_last_hour: int
    failed_last_day: int
    oldest_waiting_seconds: float | None = Field(description="Age of the oldest job waiting for a worker.")
    paused: bool = Field(description="Paused by an operator: its waiting jobs stay until resumed.")


class QueuesOut(Schema):
    tenant_paused: bool = Field(description="The tenant's work is paused (its kill switch).")
    queues: list[QueueOut]


class KindOut(Schema):
    name: str
    queue: str
    max_attempts: int
    timeout_seconds: int
    description: str
    payload_schema: dict[str, Any] = Field(description="JSON Schema of the payload.")


class TenantOut(Schema):
    slug: str
    name: str


class TokenOut(Schema):
    name: str
    prefix: str
    scope: Literal["read", "read-write"]
    platform: bool = Field(description="A platform token: tied to no tenant; reads every queue, tenant and "
                                       "figure under /platform and pauses queues.")
    tenant: TenantOut | None = Field(description="The tenant it acts in; null for a platform token.")
    created_at: datetime
    last_used_at: datetime | None


# --- figures: the queues page and the home dashboard, for tenant and platform tokens ----------------------


class TenantCountsOut(Schema):
    tenant: str = Field(description="The tenant's name, or (system).")
    counts: QueueCounts


class PlatformQueueOut(QueueOut):
    counts: QueueCounts = Field(description="Every tenant's unfinished jobs in this queue, by status.")
    paused_at: datetime | None
    workers: int | None = Field(description="Workers listening to it; null while Redis is unreachable.")
    tenants: list[TenantCountsOut] = Field(description="The counts by tenant.")


class LimitOut(Schema):
    on: Literal["kind", "queue"]
    name: str
    concurrency: int | None = Field(description="Queued or running at once, across tenants; null: no such limit.")
    rate: int | None = Field(description="Handed to workers a second, across tenants; null: no such limit.")
    busy: int = Field(description="Jobs under it queued or running now.")
    waiting: int = Field(description="Jobs held in the database for it.")

    @classmethod
    def of(cls, row) -> LimitOut:
        scope = row.scope
        return cls(on=scope.field, name=scope.name, concurrency=scope.limit.concurrency, rate=scope.limit.rate,
                   busy=row.busy, waiting=row.waiting)


class Latency(Schema):
    at_most_seconds: float | None = Field(description="The upper edge of the latency bucket (0.01 s to 3600 s) "
                                                      "the percentile falls in; null: over an hour.")


def latency(value: float | None) -> Latency | None:
    if value is None:
        return None
    return Latency(at_most_seconds=None if value == float("inf") else value)


class FiguresOut(Schema):
    succeeded: int
    failed: int
    failure_rate: float | None = Field(description="failed / finished; null when none finished.")
    wait_p50: Latency | None = Field(description="From due to started, held time included; null without jobs.")
    wait_p95: Latency | None
    run_p50: Latency | None = Field(description="From started to finished.")
    run_p95: Latency | None

    @classmethod
    def fields_of(cls, figures) -> dict[str, Any]:
        return dict(succeeded=figures.succeeded, failed=figures.failed, failure_rate=figures.failure_rate,
                    wait_p50=latency(figures.percentile("wait", 0.5)), wait_p95=latency(figures.percentile("wait", 0.95)),
                    run_p50=latency(figures.percentile("run", 0.5)), run_p95=latency(figures.percentile("run", 0.95)))


class KindFiguresOut(FiguresOut):
    kind: str


class StatsOut(FiguresOut):
    range: Literal["1h", "24h", "7d", "30d"]
    since: datetime = Field(description="The range's start: figures count jobs finished since.")
    kinds: list[KindFiguresOut] = Field(description="The same, per job kind.")

    @classmethod
    def of(cls, dashboard) -> StatsOut:
        return cls(range=dashboard.range.key, since=dashboard.start, **cls.fields_of(dashboard.total),
                   kinds=[KindFiguresOut(kind=kind, **cls.fields_of(figures)) for kind, figures in dashboard.by_kind])


class StatsQuery(Schema):
    range: Literal["1h", "24h", "7d", "30d"] = Field("24h", description="Jobs finished over the last hour, 24 "
                                                                        "hours, 7 or 30 days.")


class TenantStatsOut(Schema):
    slug: str
    name: str
    active: bool
    paused: bool = Field(description="Its kill switch is on: none of its jobs starts.")
    paused_at: datetime | None
    concurrency_limit: int | None = Field(description="Jobs it may have queued or running at once; null: no limit.")
    counts: QueueCounts = Field(description="Its unfinished jobs, by status.")
    failed_last_hour: int
    failed_last_day: int

    @classmethod
    def of(cls, row) -> TenantStatsOut:
        tenant = row.tenant
        return cls(slug=tenant.slug, name=tenant.name, active=tenant.active, paused=tenant.paused_at is not None,
                   paused_at=tenant.paused_at, concurrency_limit=row.concurrency_limit, counts=row.counts,
                   failed_last_hour=row.failed_last_hour, failed_last_day=row.failed_last_day)


class TenantOverviewOut(TenantStatsOut):
    figures: StatsOut = Field(description="What it finished over the range, as the home dashboard shows it.")


# --- schedules --------------------------------------------------------------------------------------

Misfire = Literal["skip", "once", "all"]
def _schedule_fields(*, change: bool = False) -> dict[str, Any]:
    """A schedule's own fields; in a change each is left out unless given (`change`)."""
    def given(default: Any, **spec: Any) -> Any:
        return Field(None if change else default, **spec)

    return {
        "name": (str, given(..., max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$", description="Unique in the tenant.",
                            examples=["nightly export"])),
        "priority": (WholeNumber, given(5, ge=1, le=10, description="Of each job it starts.")),
        "cron": (str, given(..., min_length=1, max_length=120, pattern=TEXT,
                            description="minute hour day-of-month month day-of-week ('30 2 * * 1'), @daily, or "
                                        "@every 15s for kinds that allow it; refused naming `cron` when it is none "
                                        "of these.", examples=["30 2 * * *"])),
        "timezone": (str, given("UTC", min_length=1, max_length=64, pattern=TEXT,
                                description="An IANA name, e.g. Europe/Berlin; refused naming `timezone` otherwise.",
                                examples=["Europe/Berlin"])),
        "misfire_policy": (Misfire, given("once", description="Runs missed while no scheduler ran: skip them, run "
                                                              "once, or run each (bounded).")),
        "start_at": (DateTime | None, given(None, description="Fire nothing before this.")),
        "end_at": (DateTime | None, given(None, description="Fire nothing after this (and after start_at).")),
        "enabled": (bool, given(True, description="false: paused.")),
    }


def schedule_schema(kinds: list[Kind]) -> Any:
    """A new schedule's body: a public `kind` with its payload (published with the kind's schema), a unique
    `name`, the timing; one variant per public kind, told apart by `kind`."""
    return _by_kind(kinds, "Schedule", "A schedule of {} jobs.", lambda payload: {
        "payload": (payload, Field(default_factory=dict, description="Each job's payload.")), **_schedule_fields()})


def schedule_change_schema(kinds: list[Kind]) -> Any:
    """What changes in a schedule: any of its fields; the payload is checked against the kind it will have."""
    names = tuple(kind.name for kind in kinds)
    kind = Literal[names] if names else str  # type: ignore[valid-type]
    fields = {"kind": (kind, Field(None, description="A public kind (GET /kinds).")),
              "payload": (dict[str, Any], Field(None, description="Each job's payload, checked against the kind's "
                                                                   "schema (GET /kinds); refused naming "
                                                                   "`payload.<field>` when it does not fit.")),
              **_schedule_fields(change=True)}
    return create_model("ScheduleChangeIn", __config__=BODY, __doc__="What changes in a schedule.", **fields)


class ScheduleRunOut(Schema):
    fire_at: datetime = Field(description="The fire time it stands for (now, for a run now).")
    outcome: str = Field(description="fired, caught_up, skipped, manual or error.")
    job: UUID | None = Field(description="The job it enqueued; follow it at GET /jobs/{id}.")
    note: str

    @classmethod
    def of(cls, run) -> ScheduleRunOut:
        return cls(fire_at=run.fire_at, outcome=run.outcome, job=run.job_id, note=run.note)


class ScheduleOut(Schema):
    id: int
    name: str
    kind: str
    payload: dict[str, Any]
    priority: int
    cron: str
    description: str = Field(description="The timing in words.")
    timezone: str
    misfire_policy: Misfire
    start_at: datetime | None
    end_at: datetime | None
    enabled: bool
    state: Literal["active", "paused", "ended"]
    next_run_at: datetime | None = Field(description="null while paused or once ended.")
    last_run: ScheduleRunOut | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule) -> ScheduleOut:
        """From a schedule read with its `last_run` (`selectors.api_schedule_list`, `api_schedule_get`)."""
        last = schedule.last_run
        state = "paused" if not schedule.enabled else "active" if schedule.next_fire_at else "ended"
        return cls(id=schedule.pk, name=schedule.name, kind=schedule.kind, payload=schedule.payload,
                   priority=schedule.priority, cron=schedule.cron, description=schedule.description,
                   timezone=schedule.timezone, misfire_policy=schedule.misfire_policy, start_at=schedule.start_at,
                   end_at=schedule.end_at, enabled=schedule.enabled, state=state,
                   next_run_at=schedule.next_fire_at if schedule.enabled else None,
                   last_run=ScheduleRunOut.of(last) if last else None, created_at=schedule.created_at,
                   updated_at=schedule.updated_at)


_ENQUEUE_FIELDS: dict[str, Any] = {
    "idempotency_key": (str | None, Field(None, min_length=1, max_length=200, pattern=KEY,
                                          description="While a job with this key is unfinished, the same "
                                                      "request returns it (200) instead of a new one.")),
    # Not nullable: leave one out instead; giving both is refused (their descriptions say so).
    "run_at": (DateTime, Field(None, description="Run at this time (with a UTC offset), at most ten years "
                                                      "from now; a time past runs now. Not together with delay.")),
    "delay": (float, Field(None, ge=0, lt=DELAY_MAX_SECONDS,
                           description="Run after this many seconds. Not together with run_at.")),
    "priority": (WholeNumber, Field(5, ge=1, le=10, description="Among its queue's waiting jobs, higher goes first "
                                                       "(1 to 10; 5 is the default).")),
}
# run_at and delay exclude each other: their descriptions say so and enqueue refuses both, naming `delay`.
# (A JSON Schema `not` would say it too, but Swagger UI then shows the whole body's type as "never".)
_ENQUEUE_CONFIG = BODY


def payload_json_schema(kind: Kind) -> dict[str, Any]:
    """The kind's payload schema as one self-contained JSON Schema (definitions inlined)."""
    schema = kind.schema.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                # A recursive model cannot be inlined for ever: deep down it is any object.
                target = definitions.get(ref.removeprefix("#/$defs/"), {})
                return inline(target, depth + 1) if depth < 8 else {"type": "object"}
            return {key: inline(value, depth) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item, depth) for item in node]
        return node

    return inline(schema)


def enqueue_schema(kinds: list[Kind]) -> Any:
    """The enqueue body: for each public kind, `kind` (that name), `payload` (published with that kind's
    schema) and the common options; one of them, told apart by `kind`.

    The payload is checked by the engine (`enqueue`), from JSON as a worker will read it, so its
    errors are the engine's own (`payload.steps: ...`); the schema here documents it.
    """
    return _by_kind(kinds, "Enqueue", "Enqueue a {} job.", lambda payload: {
        "payload": (payload, Field(default_factory=dict)), **_ENQUEUE_FIELDS})


def bulk_schema(kinds: list[Kind]) -> Any:
    """The bulk enqueue body: `kind`, 1 to 1,000 `payloads` (each published with the kind's schema) and a
    priority for them all; one variant per public kind, told apart by `kind`."""
    return _by_kind(kinds, "Bulk", "Enqueue many {} jobs.", lambda payload: {
        "payloads": (list[payload], Field(min_length=1, max_length=BULK_MAX,
                                          description=f"1 to {BULK_MAX:,} payloads, each the kind's.")),
        "priority": _ENQUEUE_FIELDS["priority"]})


BULK_MAX = 1000
BATCH_NAME = Field(max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$",
                   description="What staff will recognise it by in the admin.", examples=["march invoices"])


def batch_schema(kinds: list[Kind]) -> Any:
    """A batch's body: a `name`, a public `kind` and 1 to 1,000 `payloads` of it, run side by side."""
    return _by_kind(kinds, "Batch", "A batch of {} jobs.", lambda payload: {
        "name": (str, BATCH_NAME),
        "payloads": (list[payload], Field(min_length=1, max_length=BULK_MAX,
                                          description=f"1 to {BULK_MAX:,} payloads, each the kind's."))})


def chain_schema(kinds: list[Kind]) -> Any:
    """A chain's body: a `name` and 1 to 100 `steps`, each a public kind with its payload; each step starts
    when the one before succeeded."""
    step = _by_kind(kinds, "Step", "A {} step.", lambda payload: {
        "payload": (payload, Field(default_factory=dict))})
    return create_model("ChainIn", __config__=_ENQUEUE_CONFIG, name=(str, BATCH_NAME),
                        steps=(list[step], Field(min_length=1, max_length=100)))


def _by_kind(kinds: list[Kind], prefix: str, doc: str, fields: Callable[[Any], dict[str, Any]]) -> Any:
    variants = []
    for kind in kinds:
        name = prefix + "".join(part.title() for part in re.split(r"[._-]", kind.name))
        payload = Annotated[dict[str, Any], WithJsonSchema(payload_json_schema(kind))]
        variants.append(create_model(name, __config__=_ENQUEUE_CONFIG, __doc__=doc.format(kind.name),
                                     kind=(Literal[kind.name], ...), **fields(payload)))
    if not variants:  # no public kind: every request is refused, naming `kind`
        return create_model(f"{prefix}AnyKind", __config__=_ENQUEUE_CONFIG,
                            kind=(str, Field(max_length=100, pattern=TEXT)), **fields(dict[str, Any]))
    if len(variants) == 1:
        return variants[0]
    return Annotated[Union[tuple(variants)], Field(discriminator="kind")]  # noqa: UP007 (built at run time)
