"""Job kinds: `@job_kind` registers a handler with its queue, retry policy, timeout and payload schema."""
from __future__ import annotations

import functools
import inspect
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

Backoff = float | Sequence[float] | Callable[[int], float]

_kinds: dict[str, Kind] = {}
_caps: dict[str, int] = {}
_rates: dict[str, int] = {}
# global_limits()'s answer, kept until a kind is registered or JOBS_KIND_LIMITS is replaced: every enqueue
# and every finished job asks.
_global_cache: tuple[object, dict] | None = None
_queue_cache: tuple[object, dict] | None = None  # queue_limits()'s answer, kept while JOBS_QUEUE_LIMITS is the same
# Functions that may make a kind not registered yet (Django tasks, imported when first asked for);
# each returns the kind, or None when the name is not theirs.
_resolvers: list[Callable[[str], Kind | None]] = []


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Callable[..., Any]
    queue: str
    max_attempts: int
    timeout: int
    backoff: Backoff
    backoff_max: float
    jitter: float
    schema: type[pydantic.BaseModel]
    public: bool = False
    system: bool = False
    tenant_concurrency: int | None = None
    tenant_rate: int | None = None
    sensitive: frozenset[str] = frozenset()
    # Days its finished jobs are kept, instead of their tenant's (a tenant may set its own per kind).
    retention_succeeded_days: int | None = None
    retention_failed_days: int | None = None
    # The shortest `@every N seconds` a schedule may give it, under a minute (None: cron's minute at most).
    repeat_min_seconds: int | None = None
    # Across every tenant: at most this many queued or running at once, and handed to workers a second.
    global_concurrency: int | None = None
    global_rate: int | None = None

    def validate(self, payload: Any) -> dict[str, Any]:
        """The payload as stored: checked, defaults filled in. Raises ValidationError naming the field."""
        raw = encode_payload(payload)
        try:
            model = self.schema.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            raise ValidationError(_field_errors(exc)) from None
        return model.model_dump(mode="json")

    def validate_many(self, payloads: Sequence[Any]) -> list[dict[str, Any]]:
        """`validate` for many payloads in one pass; errors are named `payloads[i].payload.field`."""
        errors: dict[str, list[str]] = {}
        raws: list[bytes] = []
        for index, payload in enumerate(payloads):
            try:
                raws.append(encode_payload(payload))
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    errors[f"payloads[{index}].{field}"] = messages
        if errors:
            raise ValidationError(errors)
        try:
            models = self._list_adapter.validate_json(b"[" + b",".join(raws) + b"]")
        except pydantic.ValidationError as exc:
            raise ValidationError(_field_errors(exc, prefix="payloads")) from None
        return self._list_adapter.dump_python(models, mode="json")

    @functools.cached_property
    def _list_adapter(self) -> pydantic.TypeAdapter:
        return pydantic.TypeAdapter(list[self.schema])

    def arguments(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the handler, typed by the schema (for example datetimes parsed)."""
        model = self.schema.model_validate_json(json.dumps(payload))
        arguments = {name: getattr(model, name) for name in type(model).model_fields}
        return {**(model.model_extra or {}), **arguments}

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt`, jittered so retries don't stampede."""
        if callable(self.backoff):
            base = float(self.backoff(attempt))
        elif isinstance(self.backoff, Sequence):
            base = float(self.backoff[min(attempt, len(self.backoff)) - 1])
        else:
            base = min(float(self.backoff) * 2 ** (attempt - 1), self.backoff_max)
        return max(0.0, base * random.uniform(1 - self.jitter, 1 + self.jitter))


def job_kind(
    name: str,
    *,
    queue: str = "default",
    max_attempts: int = 3,
    timeout: int = 300,
    backoff: Backoff = 10.0,
    backoff_max: float = 3600.0,
    jitter: float = 0.2,
    schema: type[pydantic.BaseModel] | None = None,
    public: bool = False,
    system: bool = False,
    tenant_concurrency: int | None = None,
    tenant_rate: int | None = None,
    sensitive: Iterable[str] = (),
    retention_succeeded_days: int | None = None,
    retention_failed_days: int | None = None,
    repeat_min_seconds: int | None = None,
    global_concurrency: int | None = None,
    global_rate: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `handler(ctx, **payload)` as the job kind `name`.

    The payload schema is `schema`, or else built from the handler's typed keyword parameters. `backoff`
    is a base in seconds (doubled per attempt up to `backoff_max`), a list of delays, or a function of
    the attempt number. `public` kinds are the ones tenant staff may start themselves (from a schedule);
    the others are started by code only. `system` kinds run for the platform, never for a tenant: tenant
    staff never see them offered (filters, forms). `tenant_concurrency` caps how many jobs of this kind one tenant
    may have queued or running at once (on top of the tenant's own limit); `tenant_rate` how many of them
    one tenant's jobs are handed to workers per second (10 webhook deliveries a second, say). `sensitive`
    names payload fields that logs show as "[redacted]" (keys that look like secrets always are).
    `retention_succeeded_days` and `retention_failed_days` keep this kind's finished jobs that long
    instead of their tenant's retention (a tenant may still set its own for the kind).
    `repeat_min_seconds` lets schedules repeat it more often than once a minute (`@every 15s`), down to that.
    `global_concurrency` and `global_rate` limit it across every tenant (an SMTP relay's messages a second,
    a partner API's calls at once); JOBS_KIND_LIMITS overrides them by kind name.
    """
    if queue not in settings.RQ_QUEUES:
        raise ImproperlyConfigured(f"job kind {name!r}: unknown queue {queue!r}")
    if max_attempts < 1:
        raise ImproperlyConfigured(f"job kind {name!r}: max_attempts must be at least 1")
    if tenant_rate is not None and tenant_rate < 1:
        raise ImproperlyConfigured(f"job kind {name!r}: tenant_rate must be at least 1 (jobs a second)")
    for label, value in (("global_concurrency", global_concurrency), ("global_rate", global_rate)):
        if value is not None and value < 1:
            raise ImproperlyConfigured(f"job kind {name!r}: {label} must be at least 1")

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        kind_add(Kind(
            name=name,
            handler=handler,
            queue=queue,
            max_attempts=max_attempts,
            timeout=timeout,
            backoff=backoff,
            backoff_max=backoff_max,
            jitter=jitter,
            schema=schema or schema_from_signature(name, handler),
            public=public,
            system=system,
            tenant_concurrency=tenant_concurrency,
            tenant_rate=tenant_rate,
            sensitive=frozenset(sensitive),
            retention_succeeded_days=retention_succeeded_days,
            retention_failed_days=retention_failed_days,
            repeat_min_seconds=repeat_min_seconds,
            global_concurrency=global_concurrency,
            global_rate=global_rate,
        ))
        return handler

    return register


def kind_add(kind: Kind) -> Kind:
    """Register `kind` (what `@job_kind` does); registering the same handler again replaces it."""
    existing = _kinds.get(kind.name)
    if existing and existing.handler.__qualname__ != kind.handler.__qualname__:
        raise ImproperlyConfigured(f"job kind {kind.name!r} is already registered by {existing.handler!r}")
    global _global_cache
    _kinds[kind.name] = kind
    _global_cache = None
    for table, value in ((_caps, kind.tenant_concurrency), (_rates, kind.tenant_rate)):
        if value is None:
            table.pop(kind.name, None)
        else:
            table[kind.name] = value
    return kind


def kind_registered(name: str) -> Kind | None:
    """The kind registered under `name` in this process, without asking the resolvers."""
    return _kinds.get(name)


def kind_resolver_add(resolver: Callable[[str], Kind | None]) -> None:
    """`resolver(name)` is asked for a kind not registered yet (once per process and name, as it
    registers what it finds)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def get_kind(name: str) -> Kind:
    """The registered kind, or a ValidationError on the `kind` field."""
    kind = _kinds.get(name)
    if kind is None:
        kind = next((found for resolver in _resolvers if (found := resolver(name)) is not None), None)
    if kind is None:
        raise ValidationError({"kind": [f"Unknown job kind {name!r}."]})
    return kind


def all_kinds() -> list[Kind]:
    return list(_kinds.values())


def kind_names() -> list[str]:
    """Every registered kind's name, sorted: the admin's kind filter, without scanning the jobs table."""
    return sorted(_kinds)


def kind_rates() -> dict[str, int]:
    """Kinds with a per-tenant rate limit: kind name -> jobs a second (kept at registration: every
    enqueue asks). Do not change the dict returned."""
    return _rates


def kind_caps() -> dict[str, int]:
    """Kinds with a per-tenant concurrency cap: kind name -> cap (kept at registration, as above)."""
    return _caps


@dataclass(frozen=True)
class GlobalLimit:
    concurrency: int | None = None  # queued or running at once, across tenants
    rate: int | None = None  # handed to workers a second, across tenants

    def reason(self, subject: str) -> str:
        """What a held job says while it waits; `subject` is its kind ("email.send") or queue ("queue bulk")."""
        if self.rate is not None:
            return f"Waiting: {subject} is at its global rate of {self.rate}/s."
        return f"Waiting: {subject} is at its global limit of {self.concurrency} at once."


def global_limits() -> dict[str, GlobalLimit]:
    """Kinds limited across every tenant: their own (`@job_kind(global_concurrency=, global_rate=)`), with
    JOBS_KIND_LIMITS ({"email.send": {"global_rate": 20}}) over them; a limit of 0 there lifts one. Do not
    change the dict returned."""
    global _global_cache
    overrides = settings.JOBS_KIND_LIMITS
    if _global_cache is not None and _global_cache[0] is overrides:
        return _global_cache[1]
    limits = {name: (kind.global_concurrency, kind.global_rate) for name, kind in _kinds.items()
              if kind.global_concurrency is not None or kind.global_rate is not None}
    for name, override in overrides.items():
        concurrency, rate = limits.get(name, (None, None))
        concurrency = override.get("global_concurrency", concurrency) or None
        rate = override.get("global_rate", rate) or None
        limits[name] = (concurrency, rate)
    answer = {name: GlobalLimit(*values) for name, values in limits.items() if values != (None, None)}
    _global_cache = (overrides, answer)
    return answer


def queue_limits() -> dict[str, GlobalLimit]:
    """Queues limited across every tenant, from JOBS_QUEUE_LIMITS ({"bulk": {"global_concurrency": 5,
    "global_rate": 20}}): every job on the queue counts, whatever its kind, except kinds limited on their
    own (a job is under one global limit; `manage.py check` warns of each kind under both,
    `global_limit_conflicts`). Do not change the dict returned."""
    global _queue_cache
    configured = settings.JOBS_QUEUE_LIMITS
    if _queue_cache is not None and _queue_cache[0] is configured:
        return _queue_cache[1]
    answer = {}
    for queue, limit in configured.items():
        values = (limit.get("global_concurrency") or None, limit.get("global_rate") or None)
        if values != (None, None):
            answer[queue] = GlobalLimit(*values)
    _queue_cache = (configured, answer)
    return answer


def global_limit_conflicts() -> list[str]:
    """Kinds limited on their own whose queue is limited too: each job may be under one global limit."""
    queues = queue_limits()
    return sorted(name for name in global_limits() if name in _kinds and _kinds[name].queue in queues)


def tenant_kind_names() -> list[str]:
    """Every kind but the platform's own (`system`): what tenant staff may find jobs of."""
    return sorted(name for name, kind in _kinds.items() if not kind.system)


def public_kind_names() -> list[str]:
    """Kinds tenant staff may start themselves, sorted."""
    return sorted(name for name, kind in _kinds.items() if kind.public)


def schema_from_signature(name: str, handler: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """A strict pydantic model of the handler's parameters after `ctx`; unknown fields are refused."""
    params = list(inspect.signature(handler).parameters.values())[1:]
    hints = inspect.get_annotations(handler, eval_str=True)  # resolves `from __future__` strings
    fields: dict[str, Any] = {}
    extra = "forbid"
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise ImproperlyConfigured(f"job kind {name!r}: payload parameters must be keywords")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    config = pydantic.ConfigDict(extra=extra, strict=True)
    model_name = "".join(part.title() for part in name.replace("-", ".").split(".")) + "Payload"
    return pydantic.create_model(model_name, __config__=config, **fields)


def encode_payload(payload: Any) -> bytes:
    """The payload as JSON bytes, or a ValidationError naming what cannot be stored."""
    if not isinstance(payload, Mapping):
        raise ValidationError({"payload": [f"Must be a JSON object, not {type(payload).__name__}."]})
    try:
        raw = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        raise ValidationError(_unserialisable_fields(payload)) from None
    limit = settings.JOBS_MAX_PAYLOAD_BYTES
    if len(raw) > limit:
        raise ValidationError({"payload": [f"Is {len(raw)} bytes as JSON; the limit is {limit} bytes."]})
    if b"\\u0000" in raw and (where := _nul_at(payload, "payload")):  # PostgreSQL cannot store U+0000
        raise ValidationError({where: ["Contains a NUL character (U+0000), which cannot be stored."]})
    return raw


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first key or text holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if "\x00" in str(key):
                return path
            if found := _nul_at(item, f"{path}.{key}"):
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if found := _nul_at(item, f"{path}[{index}]"):
                return found
    return None


def _unserialisable_fields(payload: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key, value in payload.items():
        try:
            json.dumps({key: value}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            errors[f"payload.{key}"] = [f"Not JSON-serialisable: {exc}."]
    return errors or {"payload": ["Not JSON-serialisable (keys must be strings)."]}


def _field_errors(exc: pydantic.ValidationError, prefix: str = "") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = list(error["loc"])
        head = f"{prefix}[{loc.pop(0)}].payload" if prefix else "payload"
        field = ".".join([head, *(str(part) for part in loc)])
        message = "Unknown field." if error["type"] == "extra_forbidden" else f"{error['msg']}."
        errors.setdefault(field, []).append(message)
    return errors
