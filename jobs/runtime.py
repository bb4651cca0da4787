"""Running one attempt: claim it in the database, run the kind's handler, record the outcome.

The claim is a conditional UPDATE (`queued -> running`), so a second delivery of the same job while
one runs finds nothing to claim and does nothing. The outcome is written only if the attempt is still
open, so a late horse cannot overwrite what the reconciler already decided.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.db.models.functions import Now
from django.utils import timezone
from rq.timeouts import JobTimeoutException

from jobs import eventlog, postgres, signals
from jobs.exceptions import GiveUp, RetryAfter, Snooze
from jobs.models import Attempt, AttemptLog, Job, LogLevel, Outcome, QueueState, Status, Trigger, error_fingerprint
from jobs.registry import Kind, get_kind
from jobs.tenancy import tenant_context
from tenants.models import Tenant

logger = logging.getLogger(__name__)

ERROR_MESSAGE_LIMIT = 2000
TRACEBACK_LIMIT = 20000


class JobStopped(Exception):
    """Raised inside a handler (at `ctx.progress`) when staff asked to stop the running job."""


class AttemptFailed(Exception):
    """Raised to RQ after a failed attempt was recorded, so RQ's own state shows the failure too."""


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass
class Claim:
    job: Job
    attempt: Attempt
    # The database's clock minus this process's, as seen at the claim; the outcome is recorded on the
    # database's clock too, so an attempt never ends before it started and retries come due on time.
    clock_offset: timedelta = timedelta(0)

    def now(self):
        return timezone.now() + self.clock_offset

    def to_json(self) -> bytes:
        """The claim as the worker hands it to its work process: each row's column values, in order."""
        rows = [self.job, self.attempt, *([self.job.tenant] if self.job.tenant_id is not None else [])]
        return json.dumps({"rows": [_row_values(row) for row in rows],
                           "clock_offset": self.clock_offset.total_seconds()}, default=_json_value).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        message = json.loads(data)
        job, attempt, *tenant = (_row_from(model, values) for model, values in
                                 zip((Job, Attempt, Tenant), message["rows"], strict=False))
        if tenant:
            job.tenant = tenant[0]
        attempt.job = job
        return cls(job=job, attempt=attempt, clock_offset=timedelta(seconds=message["clock_offset"]))


# How a column's JSON value becomes the field's value again (the rest are JSON as they are).
_DECODERS = {"DateTimeField": datetime.fromisoformat, "DateField": date.fromisoformat, "UUIDField": UUID,
             "DecimalField": Decimal}


def _row_values(row) -> list:
    return [getattr(row, f.attname) for f in row._meta.concrete_fields]


def _json_value(value):
    if isinstance(value, date):
        return value.isoformat()  # datetimes too, to the microsecond and with their zone
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value a claim carries")


@cache
def _row_decoders(model) -> tuple[list[str], list]:
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], [_DECODERS.get(f.get_internal_type()) for f in fields]


def _row_from(model, values: list):
    """The row as if just read from the database (what `Model.from_db` builds), from `_row_values`."""
    names, decoders = _row_decoders(model)
    if len(values) != len(names):
        raise ValueError(f"A {model.__name__} row has {len(names)} columns, not {len(values)}")
    values = [value if decode is None or value is None else decode(value)
              for decode, value in zip(decoders, values, strict=True)]
    return model.from_db("default", names, values)


@dataclass
class AttemptResult:
    outcome: str
    result: Any = None
    error_type: str = ""
    error_class: str = ""  # the exception's class by module path
    error_message: str = ""
    traceback: str = ""
    progress: int | None = None
    progress_message: str | None = None
    # Seconds until the next attempt, when the handler asked (RetryAfter, Snooze); final: no retry.
    delay: float | None = None
    final: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AttemptResult:
        return cls(**json.loads(raw))

    @property
    def summary(self) -> str:
        return f"{self.error_type}: {self.error_message}" if self.error_type else self.error_message


class JobContext:
    """What a handler gets as `ctx`: the job, its tenant, the attempt, and throttled progress."""

    def __init__(self, claim: Claim) -> None:
        self._clock_offset = claim.clock_offset
        self.job = claim.job
        self.tenant = claim.job.tenant
        self.attempt = claim.attempt
        self._reported: tuple[int, str] | None = None
        self._written: tuple[int, str] | None = None
        self._last_write = 0.0
        self._log_lines: list[AttemptLog] = []
        self._logged = 0  # lines written this attempt, kept or not
        self._last_log_write = 0.0

    def log(self, message: str, level: str = LogLevel.INFO) -> None:
        """A line for the attempt's log on the job's page (with its time and level); written with progress's
        throttle, and whatever is left when the attempt ends. JOBS_LOG_LINES per attempt are kept."""
        if level not in LogLevel.values:
            raise ValueError(f"Unknown log level {level!r}; use one of {', '.join(LogLevel.values)}")
        self._logged += 1
        if self._logged <= settings.JOBS_LOG_LINES:
            self._log_lines.append(AttemptLog(attempt_id=self.attempt.pk, at=timezone.now() + self._clock_offset,
                                              level=level, message=str(message)[:ERROR_MESSAGE_LIMIT]))
        if time.monotonic() - self._last_log_write >= settings.JOBS_PROGRESS_MIN_INTERVAL:
            self.flush_log()

    def flush_log(self, *, final: bool = False) -> None:
        """Write the lines logged since the last write (at the end, say how many were not kept)."""
        self._last_log_write = time.monotonic()
        if final and self._logged > settings.JOBS_LOG_LINES:
            self._log_lines.append(AttemptLog(
                attempt_id=self.attempt.pk, at=timezone.now() + self._clock_offset, level=LogLevel.WARNING,
                message=f"{self._logged - settings.JOBS_LOG_LINES} more line(s) not kept: an attempt keeps "
                        f"{settings.JOBS_LOG_LINES} (JOBS_LOG_LINES)."))
        if not self._log_lines:
            return
        lines, self._log_lines = self._log_lines, []
        try:
            AttemptLog.objects.bulk_create(lines)
        except Exception:  # the job's outcome matters more than its log lines
            logger.warning("Job %s: %d log line(s) could not be stored", self.job.pk, len(lines), exc_info=True)

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0-100). Writes are throttled; the last value always lands at the end."""
        self._reported = (max(0, min(100, int(percent))), str(message)[:255])
        if time.monotonic() - self._last_write >= settings.JOBS_PROGRESS_MIN_INTERVAL:
            self._flush()
        if str(self.job.pk) in _stop_requests:
            raise JobStopped("Stopped on request")

    @property
    def stop_requested(self) -> bool:
        """True once staff asked to stop this job (asks the database unless the worker already knows)."""
        if str(self.job.pk) not in _stop_requests and self._stop_flag_in_database():
            _stop_requests.add(str(self.job.pk))
        return str(self.job.pk) in _stop_requests

    def check_stop(self) -> None:
        """Raise JobStopped if a stop was requested; long handlers call this at safe points."""
        if self.stop_requested:
            raise JobStopped("Stopped on request")

    def _stop_flag_in_database(self) -> bool:
        return Job.objects.filter(pk=self.job.pk, stop_requested_at__isnull=False).exists()

    def _flush(self) -> None:
        self._last_write = time.monotonic()
        if self._reported is None or self._reported == self._written:
            return
        percent, message = self._reported
        # Skips the row once a stop is requested, which is how a progress write notices the stop.
        written = Job.objects.filter(
            pk=self.job.pk, status=Status.RUNNING, attempts=self.attempt.number, stop_requested_at__isnull=True
        ).update(progress=percent, progress_message=message)
        self._written = self._reported
        if not written and self._stop_flag_in_database():
            _stop_requests.add(str(self.job.pk))

    def final_progress(self) -> tuple[int | None, str | None]:
        return self._reported if self._reported else (None, None)


# The attempt running in this thread (and in the tasks it awaits: context variables follow them).
_running: ContextVar[JobContext | None] = ContextVar("jobs_running", default=None)

# Job ids that staff asked to stop; a SimpleWorker has no horse to kill, so handlers see it at ctx.progress.
_stop_requests: set[str] = set()


def request_stop(job_id: str) -> None:
    _stop_requests.add(str(job_id))


def forget_stop_request(job_id: str) -> None:
    _stop_requests.discard(str(job_id))


def attempt_claim(*, job_id: str, worker: WorkerIdentity) -> Claim | None:
    """Start the next attempt of a queued job, or return None when there is nothing to claim."""
    asked_at = timezone.now()
    if postgres.supported():
        claimed = postgres.claim(job_id=job_id, worker_name=worker.name, hostname=worker.hostname, pid=worker.pid)
    else:
        # One machine's clock (SQLite): nothing to disagree with.
        claimed = _claim_with_orm(job_id, asked_at, worker)
    if claimed is None:
        logger.info("Job %s: nothing to claim (not queued); delivery ignored", job_id)
        return None
    job, attempt = claimed
    eventlog.job_changed(job, worker=worker.name)
    _send(signals.job_started, job, attempt)
    return Claim(job=job, attempt=attempt, clock_offset=attempt.started_at - asked_at)


def _send(signal, job: Job, attempt: Attempt | None) -> None:
    # Host code's receivers must not undo what is already committed (a claim, an outcome).
    for receiver, response in signal.send_robust(sender=Job, job=job, attempt=attempt):
        if isinstance(response, Exception):
            logger.error("Job %s: %r receiver failed: %r", job.pk, receiver, response, exc_info=response)


def _claim_with_orm(job_id: str, now, worker: WorkerIdentity) -> tuple[Job, Attempt] | None:
    with transaction.atomic():
        paused = QueueState.objects.filter(name=OuterRef("queue"), paused_at__isnull=False)
        claimed = Job.objects.filter(pk=job_id).exclude(Exists(paused)).exclude(tenant__paused_at__isnull=False).transition(
            Status.RUNNING, attempts=F("attempts") + 1, started_at=now, progress=0, progress_message=""
        )
        if not claimed:
            return None
        job = Job.objects.select_related("tenant").get(pk=job_id)
        attempt = Attempt.objects.create(
            job=job,
            number=job.attempts,
            trigger=job.next_trigger,
            triggered_by_id=job.next_triggered_by_id,
            worker_name=worker.name,
            hostname=worker.hostname,
            pid=worker.pid,
            started_at=now,
            heartbeat_at=now,
        )
    return job, attempt


def attempt_execute(claim: Claim) -> AttemptResult:
    """Run the handler; never raises for the handler's own errors, which become the result."""
    ctx = JobContext(claim)
    running = _running.set(ctx)
    try:
        kind = get_kind(claim.job.kind)
        # Jobs it starts carry the request id on, and are its tenant's unless it says otherwise.
        with eventlog.request_id_bound(claim.job.request_id), tenant_context(claim.job.tenant):
            value = kind.handler(ctx, **kind.arguments(claim.job.payload))
        _check_json(value)
        outcome = AttemptResult(Outcome.SUCCEEDED, result=value)
    except Snooze as exc:
        outcome = AttemptResult(Outcome.SNOOZED, error_message=str(exc)[:ERROR_MESSAGE_LIMIT], delay=exc.seconds)
    except JobStopped as exc:
        outcome = _error_result(Outcome.STOPPED, exc)
    except RetryAfter as exc:
        outcome = _error_result(Outcome.FAILED, exc)
        outcome.delay = exc.seconds
    except GiveUp as exc:
        outcome = _error_result(Outcome.FAILED, exc)
        outcome.final = True
    except JobTimeoutException as exc:
        outcome = _error_result(Outcome.TIMED_OUT, exc)
    except Exception as exc:
        outcome = _error_result(Outcome.FAILED, exc)
    finally:
        _stop_requests.discard(str(claim.job.pk))
        _running.reset(running)
        ctx.flush_log(final=True)
    outcome.progress, outcome.progress_message = ctx.final_progress()
    return outcome


def log(message: str, level: str = LogLevel.INFO) -> None:
    """`ctx.log` from anywhere in the running attempt's code (a Django task, a helper); outside a job it
    goes to this module's logger instead."""
    ctx = _running.get()
    if ctx is None:
        logger.log(logging.getLevelNamesMapping().get(str(level).upper(), logging.INFO), "%s", message)
        return
    ctx.log(message, level)


def current_context() -> JobContext | None:
    """The context of the attempt running in this thread (what its handler got as `ctx`), or None."""
    return _running.get()


def progress(percent: float, message: str = "") -> None:
    """Report the running attempt's progress from anywhere in its code (a Django task, a helper it
    calls), as `ctx.progress` does; outside a job it does nothing."""
    ctx = _running.get()
    if ctx is not None:
        ctx.progress(percent, message)


def _check_json(value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Job result is not JSON-serialisable: {exc}") from None


def _error_result(outcome: str, exc: BaseException) -> AttemptResult:
    return AttemptResult(
        outcome,
        error_type=type(exc).__name__,
        error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error_message=str(exc)[:ERROR_MESSAGE_LIMIT],
        traceback="".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:],
    )


def attempt_finish(*, claim: Claim, result: AttemptResult, retry_trigger: str = Trigger.RETRY) -> Job | None:
    """Record an attempt's outcome and move the job on: succeeded, retrying (with backoff) or failed.

    Returns the updated job, or None when the attempt had already been settled elsewhere.
    """
    job, attempt = claim.job, claim.attempt
    if result.outcome == Outcome.ABANDONED and _stop_was_requested(job.pk):
        result.outcome = Outcome.STOPPED
    now = claim.now()
    status, fields = _next_state(job, attempt, result, now, retry_trigger)
    outcome_fields = {
        "outcome": result.outcome,
        "error_type": result.error_type[:200],
        "error_class": result.error_class[:300],
        "error_message": result.error_message,
        "traceback": result.traceback,
    }
    if postgres.supported():
        moved = postgres.finish(attempt=attempt, ended_at=now, outcome_fields=outcome_fields, status=status,
                                  job_fields=fields)
    else:
        moved = _finish_with_orm(attempt, job, now, outcome_fields, status, fields)
    if moved is None:
        return None  # the attempt had already been settled (by the reconciler, or a late horse)
    if moved != status:
        logger.warning("Job %s: attempt %s recorded but the job had moved on", job.pk, attempt.number)
        return None
    for name, value in {**fields, "status": status, "updated_at": now}.items():
        setattr(job, name, value)
    for name, value in {**outcome_fields, "ended_at": now}.items():
        setattr(attempt, name, value)
    eventlog.job_changed(job, duration=(now - attempt.started_at).total_seconds(), outcome=result.outcome,
                         error_type=result.error_type)
    _announce(job, attempt)
    return job


def _finish_with_orm(attempt: Attempt, job: Job, now, outcome_fields: dict, status: str, fields: dict) -> str | None:
    with transaction.atomic():
        settled = Attempt.objects.filter(pk=attempt.pk, ended_at__isnull=True).update(ended_at=now, **outcome_fields)
        if not settled:
            return None
        moved = Job.objects.filter(pk=job.pk, attempts=attempt.number).transition(status, **fields)
    return status if moved else ""


def _stop_was_requested(job_id) -> bool:
    return Job.objects.filter(pk=job_id, stop_requested_at__isnull=False).exists()


def _next_state(job: Job, attempt: Attempt, result: AttemptResult, now, retry_trigger: str):
    fields: dict[str, Any] = {}
    if result.progress is not None:
        fields.update(progress=result.progress, progress_message=result.progress_message or "")
    if result.outcome == Outcome.SUCCEEDED:
        fields.update(progress=100, result=result.result, finished_at=now, last_error="", error_fingerprint="")
        return Status.SUCCEEDED, fields
    if result.outcome == Outcome.SNOOZED:
        # Not a failure: the attempt it used is given back, so snoozing never exhausts the retries.
        fields.update(run_at=now + timedelta(seconds=result.delay or 0), next_trigger=Trigger.SNOOZE,
                      next_triggered_by=None, max_attempts=job.max_attempts + 1)
        return Status.SCHEDULED, fields
    fields["last_error"] = result.summary[:ERROR_MESSAGE_LIMIT]
    fields["error_fingerprint"] = error_fingerprint(kind=job.kind, error_type=result.error_type,
                                                    message=result.error_message)
    if result.outcome == Outcome.STOPPED:
        fields["finished_at"] = now
        return Status.CANCELLED, fields
    if attempt.number < job.max_attempts and not result.final:
        delay = max(_retry_delay(job, attempt.number), result.delay or 0)
        # The bar shows the coming attempt, not the one that failed (its error stays on the attempt).
        fields.update(run_at=now + timedelta(seconds=delay), next_trigger=retry_trigger, next_triggered_by=None,
                      progress=0, progress_message="")
        return Status.RETRYING, fields
    fields["finished_at"] = now
    return Status.FAILED, fields


def _retry_delay(job: Job, attempt_number: int) -> float:
    try:
        kind: Kind = get_kind(job.kind)
    except ValidationError:
        logger.warning("Job %s: kind %r is not registered in this process; retrying in 60s", job.pk, job.kind)
        return 60.0
    return kind.retry_delay(attempt_number)


def _announce(job: Job, attempt: Attempt) -> None:
    signal = {
        Status.SUCCEEDED: signals.job_succeeded,
        Status.FAILED: signals.job_failed,
        Status.CANCELLED: signals.job_cancelled,
    }.get(job.status)
    if signal is not None:
        _send(signal, job, attempt)


class Heartbeat:
    """One thread per process that keeps `heartbeat_at` fresh on the attempts this process runs.

    The reconciler treats an attempt whose heartbeat is older than JOBS_ABANDON_AFTER_SECONDS as
    abandoned (its worker died). The beat lives in the database, so a Redis flush or restart does not
    make running jobs look dead.
    """

    def __init__(self) -> None:
        self._attempt_ids: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0

    @contextmanager
    def beating(self, attempt_id: int):
        self._ensure_thread()
        with self._lock:
            self._attempt_ids.add(attempt_id)
        try:
            yield
        finally:
            with self._lock:
                self._attempt_ids.discard(attempt_id)

    def _ensure_thread(self) -> None:
        # A forked child inherits this object but not the thread.
        if self._thread is None or self._owner_pid != os.getpid() or not self._thread.is_alive():
            self._owner_pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="jobs-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(settings.JOBS_HEARTBEAT_SECONDS)
            with self._lock:
                ids = list(self._attempt_ids)
            if not ids:
                continue
            try:
                # The database's clock, as the claim and the reconciler's cutoff use: a worker host whose
                # clock is behind must not look dead, nor one ahead look alive after it died.
                Attempt.objects.filter(pk__in=ids, ended_at__isnull=True).update(heartbeat_at=Now())
            except Exception:
                logger.exception("Heartbeat write failed; will retry")
            finally:
                # A reconnect every few seconds is cheap; an idle connection held forever is not.
                connection.close()


heartbeat = Heartbeat()


# --- Hand-over between a tracked worker and the entry point -------------------------------------
# A tracked worker claims the attempt in its own process (which keeps a warm database connection)
# before it forks, and records the outcome after the horse exits. The horse only runs the handler
# and delivers the result back through `deliver`.

_prepared: tuple[str, Claim | None, Any, Any] | None = None


def prepare(*, job_id: str, claim: Claim | None, deliver, execute=None) -> None:
    """What the entry point does for `job_id`: run `claim` with `execute` (in this process when None)
    and hand the outcome to `deliver`."""
    global _prepared
    _prepared = (job_id, claim, deliver, execute or attempt_execute)


def take_prepared(job_id: str) -> tuple[bool, Claim | None, Any, Any]:
    global _prepared
    if _prepared is None or _prepared[0] != job_id:
        return False, None, None, None
    _, claim, deliver, execute = _prepared
    _prepared = None
    return True, claim, deliver, execute


def run_unmanaged(job_id: str) -> dict[str, str]:
    """The whole attempt in one process, for workers that are not tracked workers (any RQ worker)."""
    claim = attempt_claim(job_id=job_id, worker=WorkerIdentity(name=os.environ.get("RQ_WORKER_ID", "rq")))
    if claim is None:
        return {"outcome": "skipped"}
    with heartbeat.beating(claim.attempt.pk):
        result = attempt_execute(claim)
    attempt_finish(claim=claim, result=result)
    return raise_or_report(result)


def raise_or_report(result: AttemptResult) -> dict[str, str]:
    if result.outcome not in (Outcome.SUCCEEDED, Outcome.SNOOZED):
        raise AttemptFailed(result.summary)
    return {"outcome": result.outcome}
