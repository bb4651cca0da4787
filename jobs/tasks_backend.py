"""Django's tasks framework (`django.tasks`) on the engine: every `@task` becomes a tracked job kind.

    from django.tasks import task

    @task(queue_name="high", max_attempts=5)
    def send_invoice(invoice_id: int) -> str: ...

    result = send_invoice.enqueue(invoice_id=42)     # a Job row; result.id is its id
    send_invoice.get_result(result.id).status        # read back from the record

A task's kind is named by its module path (`billing.tasks.send_invoice`) and its payload is
`{"args": [...], "kwargs": {...}}`, JSON both ways. Only tasks in installed apps, or in the modules of
TRACKED_TASK_MODULES, run: any other path stored in a job is refused and never imported. Everything
else is the engine's: the caller's transaction, the relay, retries with backoff, the tenant (from
`jobs.tenant_context` or the request's, see `jobs.tenancy`), the admin, API, metrics and audit.

Priority: a task on Django's "default" queue with a priority is sent to one of ours by it: 50 to 100
critical, 1 to 49 high, 0 default, below 0 low. A task that names one of our queues stays on it. Within
its queue, the job's priority is the task's scaled to 1-10 (every 20 is one step from the default 5).
"""
from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any
from uuid import UUID

import pydantic
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils.json import normalize_json

from jobs import services, signals
from jobs.models import Attempt, Job, Outcome, Source, Status
from jobs.registry import Kind, get_kind, kind_add, kind_registered
from jobs.tenancy import current_tenant

logger = logging.getLogger(__name__)

ALLOWED_SETTING = "TRACKED_TASK_MODULES"
READY_STATUSES = {Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.RETRYING}
FAILED_OUTCOMES = {Outcome.FAILED, Outcome.TIMED_OUT, Outcome.ABANDONED, Outcome.STOPPED}


class TaskPayload(pydantic.BaseModel):
    """A task job's payload: the call's arguments, as JSON."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedTask(Task):
    """A `Task` with the engine's options, given as `@task(...)` keywords (None: the backend's OPTIONS)."""

    max_attempts: int | None = None
    timeout: int | None = None
    backoff: float | None = None
    public: bool = False  # tenant staff may schedule it
    tenant_concurrency: int | None = None


class TrackedTaskBackend(BaseTaskBackend):
    task_class = TrackedTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias, params) -> None:
        super().__init__(alias, params)
        # Tasks are frozen: one validated here (at its creation, by `@task` or `using()`) stays valid for
        # this backend, whose settings are read once. Enqueue checks again only what it has not seen.
        self._valid: set[Task] = set()

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        self._valid.add(task)
        if getattr(task, "max_attempts", None) is not None and task.max_attempts < 1:
            raise InvalidTask("max_attempts must be at least 1.")
        # A task decorated after start-up (apps loaded) is registered at once, so the admin lists it
        # and schedules may name it; one decorated while apps load is registered when first used.
        if apps.apps_ready and task is not None and module_allowed(task.func.__module__):
            register(task, options=self.options, replace=False)

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        if task not in self._valid:
            self.validate_task(task)
        kind = kind_of(task, options=self.options)
        payload = json_arguments({"args": list(args), "kwargs": dict(kwargs)})
        tenant, user = current_tenant()
        job = services.job_enqueue(kind=kind.name, tenant=tenant, payload=payload, user=user, run_at=task.run_after,
                                   queue=queue_for(task), source=Source.TASK, priority=priority_for(task))
        result = result_of(job, task, attempts=[], backend=self.alias)
        transaction.on_commit(partial(task_enqueued.send, type(self), task_result=result), robust=True)
        return result

    def get_result(self, result_id) -> TaskResult:
        try:
            job = Job.objects.get(pk=UUID(str(result_id)))
        except (ValueError, Job.DoesNotExist):
            raise TaskResultDoesNotExist(f"No task result {result_id!r}.") from None
        task = task_of(job.kind)
        if task is None:
            raise TaskResultDoesNotExist(f"{result_id} is a {job.kind!r} job, not a task's.")
        return result_of(job, task, attempts=list(job.attempt_set.order_by("number")), backend=self.alias)


# --- Which tasks may run, and their kinds --------------------------------------------------------

def module_allowed(module: str) -> bool:
    """Tasks defined in an installed app, or in a module TRACKED_TASK_MODULES names, may run."""
    return _allowed(module, tuple(getattr(settings, ALLOWED_SETTING, ())))


@lru_cache(maxsize=1024)
def _allowed(module: str, listed: tuple[str, ...]) -> bool:
    if module in listed:
        return True
    return any(module == app.name or module.startswith(app.name + ".") for app in apps.get_app_configs())


def kind_of(task: Task, *, options: dict) -> Kind:
    """The task's kind (registered now if need be); InvalidTask when its module may not run tasks."""
    module = task.func.__module__
    if not module_allowed(module):
        raise InvalidTask(f"Tasks in {module!r} may not run: it is not an installed app; add it to "
                          f"{ALLOWED_SETTING} to allow it.")
    return register(task, options=options, replace=False)


def register(task: Task, *, options: dict, replace: bool) -> Kind:
    """The kind of the task as defined (its own queue and options, whatever `using()` changed since)."""
    name = task.module_path
    if not replace and (known := kind_registered(name)) is not None:
        return known
    base = _module_task(name) or task
    return kind_add(Kind(
        name=name,
        handler=_handler_for(base),
        queue=queue_for(base),
        max_attempts=_option(base, "max_attempts", options, 3),
        timeout=_option(base, "timeout", options, 300),
        backoff=float(_option(base, "backoff", options, 10.0)),
        backoff_max=3600.0,
        jitter=0.2,
        schema=TaskPayload,
        public=bool(getattr(base, "public", False)),
        tenant_concurrency=getattr(base, "tenant_concurrency", None),
    ))


def _option(task: Task, name: str, options: dict, default):
    value = getattr(task, name, None)
    return value if value is not None else options.get(name, default)


def _module_task(path: str) -> Task | None:
    module, _, attribute = path.rpartition(".")
    try:
        found = getattr(__import__(module, fromlist=[attribute]), attribute, None)
    except ImportError:
        return None
    return found if isinstance(found, Task) else None


def resolve_kind(name: str) -> Kind | None:
    """A kind resolver (jobs.registry): a task's kind, by its module path, if that module may run tasks.
    Any other path is refused without importing anything."""
    module = name.rpartition(".")[0]
    if not module or not module_allowed(module):
        if module:
            logger.warning("Refused task %r: its module is neither an installed app nor in %s", name,
                           ALLOWED_SETTING)
        return None
    task = _module_task(name)
    if task is None or not isinstance(task.get_backend(), TrackedTaskBackend):
        return None
    return register(task, options=task.get_backend().options, replace=False)


def task_of(kind: str) -> Task | None:
    """The Task a job of `kind` runs, or None when `kind` is not a task's (or may not run)."""
    try:
        handler = get_kind(kind).handler
    except ValidationError:
        return None
    return getattr(handler, "task", None)


def queue_for(task: Task) -> str:
    """Our queue for the task: its own, or on Django's default queue, one chosen by its priority."""
    if task.queue_name != DEFAULT_TASK_QUEUE_NAME or not task.priority:
        return task.queue_name
    if task.priority >= 50:
        return "critical"
    return "high" if task.priority > 0 else "low"


def priority_for(task: Task) -> int:
    """The job's priority within its queue (1 to 10, default 5) from the task's (-100 to 100, default 0):
    every 20 of the task's is one of ours."""
    return max(1, min(10, 5 + math.floor(task.priority / 20 + 0.5)))  # halves up, as people round


def json_arguments(payload: dict) -> dict:
    """The call's arguments as they will be stored, normalised as Django's backends do (tuples become
    lists, UTF-8 bytes text); a TypeError naming the first argument that would not come back from JSON
    unchanged (nothing is stored then)."""
    return {"args": [_stored(value, f"args[{index}]") for index, value in enumerate(payload["args"])],
            "kwargs": {key: _stored(value, f"kwargs.{key}") for key, value in payload["kwargs"].items()}}


def _stored(value, path: str):
    match value:
        case str() | bool() | int() | None:
            return value
        case float():
            if not math.isfinite(value):
                raise TypeError(f"{path}: Unsupported value {value}: JSON has no such number.")
            return value
        case bytes():
            try:
                return value.decode()
            except UnicodeDecodeError:
                raise TypeError(f"{path}: Unsupported value: bytes that are not UTF-8 text.") from None
        case Mapping():
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(f"{path}: Unsupported type: the key {key!r} is not text, as JSON's keys are; "
                                    "a task's arguments must survive a JSON round trip.")
            return {key: _stored(item, f"{path}.{key}") for key, item in value.items()}
        case Sequence():
            return [_stored(item, f"{path}[{index}]") for index, item in enumerate(value)]
        case _:
            raise TypeError(f"{path}: Unsupported type: {type(value).__name__}; a task's arguments must survive "
                            "a JSON round trip.")


# --- Running a task in a worker ------------------------------------------------------------------

def _handler_for(task: Task):
    def handler(ctx, *, args: list, kwargs: dict) -> Any:
        return run_task(task, ctx, args=args, kwargs=kwargs)

    handler.__qualname__ = handler.__name__ = f"task {task.module_path}"
    handler.task = task  # what task_of() reads
    return handler


def run_task(task: Task, ctx, *, args: list, kwargs: dict) -> Any:
    """A task kind's handler: the function with the call's arguments (and a TaskContext when it takes
    one, whose attempt is this attempt's number); its return value as JSON."""
    if task.takes_context:
        attempts = list(ctx.job.attempt_set.order_by("number"))
        result = result_of(ctx.job, task, attempts=attempts, backend=task.backend)
        value = task.call(TaskContext(task_result=result), *args, **kwargs)
    else:
        value = task.call(*args, **kwargs)
    return normalize_json(value)


# --- The record as a TaskResult ------------------------------------------------------------------

def result_of(job: Job, task: Task, *, attempts: list[Attempt], backend: str) -> TaskResult:
    status = _status(job)
    errors = [TaskError(exception_class_path=_class_path(attempt), traceback=attempt.traceback or attempt.error_message)
              for attempt in attempts if attempt.outcome in FAILED_OUTCOMES]
    if job.status == Status.CANCELLED:
        errors.append(TaskError(exception_class_path="jobs.exceptions.Cancelled",
                                traceback=job.last_error or "The job was cancelled."))
    payload = job.payload or {}
    result = TaskResult(
        task=task, id=str(job.pk), status=status, enqueued_at=job.created_at,
        started_at=attempts[0].started_at if attempts else job.started_at,
        last_attempted_at=attempts[-1].started_at if attempts else job.started_at,
        finished_at=job.finished_at, args=payload.get("args", []), kwargs=payload.get("kwargs", {}),
        backend=backend, errors=errors, worker_ids=[attempt.worker_name for attempt in attempts],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _status(job: Job) -> TaskResultStatus:
    if job.status in READY_STATUSES:
        return TaskResultStatus.READY
    if job.status == Status.RUNNING:
        return TaskResultStatus.RUNNING
    return TaskResultStatus.SUCCESSFUL if job.status == Status.SUCCEEDED else TaskResultStatus.FAILED


def _class_path(attempt: Attempt) -> str:
    if attempt.error_class:
        return attempt.error_class
    # Attempts recorded before classes were: a builtin by its name, anything else as a failure.
    builtin = getattr(builtins, attempt.error_type, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return f"builtins.{attempt.error_type}"
    return "builtins.Exception"


# --- Django's signals, sent from the engine's --------------------------------------------------

def _send(signal, job: Job) -> None:
    task = task_of(job.kind)
    if task is not None:
        attempts = list(job.attempt_set.order_by("number"))
        signal.send(sender=TrackedTaskBackend, task_result=result_of(job, task, attempts=attempts,
                                                                    backend=task.backend))


def task_started_from(sender, *, job: Job, **kwargs) -> None:
    _send(task_started, job)


def task_finished_from(sender, *, job: Job, **kwargs) -> None:
    _send(task_finished, job)


def connect_signals() -> None:
    """task_started when a worker claims a task's attempt; task_finished when the job ends (succeeded,
    failed for good, or cancelled), as Django's own backends send them."""
    signals.job_started.connect(task_started_from, dispatch_uid="tasks.started")
    signals.job_succeeded.connect(task_finished_from, dispatch_uid="tasks.finished.succeeded")
    signals.job_failed.connect(task_finished_from, dispatch_uid="tasks.finished.failed")
    signals.job_cancelled.connect(task_finished_from, dispatch_uid="tasks.finished.cancelled")
