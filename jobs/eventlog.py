"""Structured logs: one JSON line per job state change, and the request id that ties them together.

Every state change of a job writes one line to the `jobs.events` logger with the job's id, tenant,
kind, the new status, the attempt number and (when an attempt ends) its duration, plus the id of the
request that enqueued it. `RequestIdMiddleware` gives each request an id (the caller's `X-Request-ID`
when it is well formed, else a new one) and returns it in the response; enqueue stores it on the job,
and a running job's handler runs under its job's request id, so jobs it enqueues carry it on.

Nothing is built when the logger is off. Payloads are logged only on the line of a job's creation,
with the fields the kind marks `sensitive` and any key that looks like a secret redacted; `JsonFormatter`
also masks token-shaped strings in every message.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobs.registry import get_kind

events = logging.getLogger("jobs.events")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_FORM = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def current_request_id() -> str:
    return _request_id.get()


class request_id_bound:
    """`with request_id_bound(rid):` log lines and jobs enqueued inside carry `rid`."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def __enter__(self) -> str:
        self._token = _request_id.set(self.request_id)
        return self.request_id

    def __exit__(self, *exc) -> None:
        _request_id.reset(self._token)


class RequestIdMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _REQUEST_ID_FORM.fullmatch(offered) else uuid.uuid4().hex
        request.request_id = request_id
        with request_id_bound(request_id):
            response = self.get_response(request)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


# --- Redaction ---

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key|cookie",
                         re.IGNORECASE)
# Token-shaped strings: bearer credentials, webhook secrets, API tokens, URL passwords.
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\bwhsec_[A-Za-z0-9+/=]{8,}"
    r"|\btj_[A-Za-z0-9]+_[A-Za-z0-9_-]{8,}"
    r"|(://[^/\s:@]+:)[^/\s@]+(@)"
)


def redact_text(text: str) -> str:
    def masked(match: re.Match) -> str:
        if match.group(1):
            return match.group(1) + REDACTED
        if match.group(2):
            return match.group(2) + REDACTED + match.group(3)
        return REDACTED
    return _SECRET_TEXT.sub(masked, text)


def redact(value: Any, sensitive: Iterable[str] = ()) -> Any:
    """`value` with the keys named in `sensitive` (at any depth) and secret-looking keys masked."""
    sensitive = frozenset(sensitive)
    if isinstance(value, Mapping):
        return {key: REDACTED if key in sensitive or _SECRET_KEY.search(str(key)) else redact(item, sensitive)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, sensitive) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# --- Job state changes ---

def job_changed(job, *, status: str | None = None, duration: float | None = None, **extra: Any) -> None:
    """One line for one job (a Job instance) that has just reached `status` (default: its own)."""
    if events.isEnabledFor(logging.INFO):
        _emit(_fields(job.pk, job.tenant_id, job.kind, status or job.status, job.attempts, job.request_id,
                      duration, extra))


def jobs_changed(rows: Iterable[tuple], *, status: str, **extra: Any) -> None:
    """One line per (id, tenant id, kind, attempts, request id) row that has just reached `status`."""
    if events.isEnabledFor(logging.INFO):
        for job_id, tenant_id, kind, attempts, request_id in rows:
            _emit(_fields(job_id, tenant_id, kind, status, attempts, request_id, None, extra))


def jobs_created(jobs: list) -> None:
    """The creation lines of freshly stored jobs (after their commit), with the payload redacted."""
    if not events.isEnabledFor(logging.INFO) or not jobs:
        return
    sensitive = get_kind(jobs[0].kind).sensitive
    for job in jobs:
        _emit(_fields(job.pk, job.tenant_id, job.kind, job.status, job.attempts, job.request_id, None,
                      {"event": "job.created", "queue": job.queue, "payload": redact(job.payload, sensitive)}))


# The columns `jobs_changed` needs, for callers that read them with values_list.
ROW_FIELDS = ("id", "tenant_id", "kind", "attempts", "request_id")


def _fields(job_id, tenant_id, kind, status, attempt, request_id, duration, extra) -> dict[str, Any]:
    fields = {"event": "job.status", "job_id": str(job_id), "tenant_id": tenant_id, "kind": kind, "status": status,
              "attempt": attempt, "request_id": request_id or ""}
    if duration is not None:
        fields["duration_ms"] = round(duration * 1000, 1)
    fields.update(extra)
    return fields


def _emit(fields: dict[str, Any]) -> None:
    events.info("%s %s %s", fields["event"], fields["job_id"], fields["status"], extra={"fields": fields})


# --- Formatting ---

class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and a record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        line.setdefault("request_id", current_request_id())
        if record.exc_info:
            line["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The human form (LOG_FORMAT=plain), masking secrets the same way."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
