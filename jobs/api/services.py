"""Writes for the JSON API: tokens made, used and revoked; jobs, schedules, the tenant's switch and queues
acted on by a token.

A token acts in the name of the member who made it, with that member's role as it is at each request:
reads need the viewer role, every write the operator role (`api_token_authorize_write`), some the admin
role. A platform token (no tenant) acts as its maker, who must still be a superuser. Actions go through
`jobs.staff` and `jobs.schedules.services` like the admin's, so the same role rules apply and each is an
audit event that names the token (`staff.acting_through`).
"""
from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.http import urlencode
from redis import RedisError

from jobs import enqueue, enqueue_many, selectors, staff, transport
from jobs.api.models import ApiToken, Scope, token_digest, token_new, token_prefix
from jobs.batches import batch_enqueue, chain_enqueue
from jobs.models import DEFAULT_PRIORITY, WAITING, AuditAction, AuditEvent, AuditState, Batch, Job, Source
from jobs.registry import public_kind_names
from jobs.schedules import cron
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.schedules.services import (schedule_check, schedule_delete, schedule_run_now, schedule_save,
                                     schedules_set_enabled)
from jobs.staff import audit_event_record
from tenants.models import Role, Tenant
from tenants.selectors import user_has_role

logger = logging.getLogger(__name__)

# Enqueue, retry and cancel are all writes of one rank: the admin's retry and cancel need an operator.
WRITE_ROLE = Role.OPERATOR

# Compared against when no token has the presented prefix, so a miss costs what a hit costs.
_NO_DIGEST = token_digest("tj_0000000000_none")


def api_token_create(*, tenant: Tenant | None, name: str, scope: str, user) -> tuple[ApiToken, str]:
    """A new token for `tenant`, made by `user`, an admin of it now; with no tenant, a platform token,
    made by a superuser. Returns the row and the token itself, which is shown once and never stored: the
    row keeps its SHA-256 digest and its prefix."""
    if scope not in Scope.values:
        raise ValueError(f"Unknown scope {scope!r}; use one of {', '.join(Scope.values)}.")
    if tenant is None and not (user.is_active and user.is_superuser):
        raise PermissionDenied("Only superusers make platform tokens (tokens tied to no tenant).")
    if tenant is not None and not user_has_role(user=user, role=Role.ADMIN, tenant=tenant):
        raise PermissionDenied(f"Only {tenant}'s admins (and superusers) make its API tokens.")
    token, prefix = token_new()
    with transaction.atomic():
        row = ApiToken.objects.create(tenant=tenant, name=name, scope=scope, prefix=prefix,
                                      key_hash=token_digest(token), created_by=user)
        audit_event_record(user=user, action=AuditAction.API_TOKEN_CREATE, tenant=tenant, target=f"API token {row}",
                           outcome=f"Created with scope {row.get_scope_display().lower()}.")
    return row, token


def api_token_revoke(*, token: ApiToken, user) -> bool:
    """Revoke a token: requests with it are refused from now on. False if it was revoked already."""
    now = timezone.now()
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=user)
        if revoked:
            audit_event_record(user=user, action=AuditAction.API_TOKEN_REVOKE, tenant=token.tenant, target=f"API token {token}",
                               outcome="Revoked: requests with it are refused.")
    if revoked:
        token.revoked_at, token.revoked_by = now, user
    return bool(revoked)


class TokenRefused(Exception):
    """The presented token does not open the API; `status` is 401 (not a valid token) or 403."""

    def __init__(self, message: str, *, status: int = 401, code: str = "unauthorized") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def api_token_authorize_write(*, token: ApiToken, action: str | None = None, job_id: UUID | None = None,
                              request_line: str = "") -> None:
    """Let a write through only for a read-write token whose maker holds the operator role in its
    tenant now; TokenRefused (403, `insufficient_scope` or `forbidden_role`) otherwise.

    The role is read afresh at each request, as the admin reads a member's at each action: demoting
    the maker stops the token's writes at once while its reads go on. A refused job action (`action`,
    on `job_id`) is recorded as a refused audit event naming the token, as the staff layer records
    one; every refusal is logged.
    """
    if not token.can_write:
        raise TokenRefused(f"Token {token.prefix} is read-only; this needs a read-write token.", status=403,
                           code="insufficient_scope")
    maker = token.created_by
    if token.is_platform or user_has_role(user=maker, role=WRITE_ROLE, tenant=token.tenant):
        return  # a platform token's maker is a superuser: api_token_use checked it at this request
    message = (f"{maker.get_username()}, who made token {token.prefix}, no longer holds the {WRITE_ROLE} role in "
               f"{token.tenant}; writes need an {WRITE_ROLE} or an admin.")
    logger.warning("API token %s refused a write: %s", token.prefix, message)
    if action is not None:
        _token_event(token=token, action=action, job_id=job_id, state=AuditState.REFUSED, requested=1, refused=1,
                     outcome=f"Refused: {message}", about=request_line)
    raise TokenRefused(message, status=403, code="forbidden_role")


def api_token_use(*, presented: str) -> ApiToken:
    """The live token `presented` stands for, its last use recorded (throttled); TokenRefused if none.

    A token works while it is not revoked, its tenant is active, and the staff member who made it
    still belongs to that tenant (or is a superuser): removing someone from a tenant, or their staff
    status, ends their tokens too.
    """
    prefix = token_prefix(presented)
    row = None
    if prefix is not None:
        row = ApiToken.objects.select_related("tenant", "created_by").filter(prefix=prefix).first()
    # The digest comparison runs (in constant time) whether or not the prefix exists.
    matched = (row or ApiToken(key_hash=_NO_DIGEST)).matches(presented)
    if row is None or not matched:
        raise TokenRefused("The token is not valid.")
    if row.revoked_at is not None:
        raise TokenRefused("The token was revoked.")
    creator = row.created_by
    if creator is None or not (creator.is_active and creator.is_staff):
        raise TokenRefused("The staff member who made this token is no longer active staff; make a new token.")
    if row.is_platform:
        if not creator.is_superuser:
            raise TokenRefused("The platform token's maker is no longer a superuser; make a new token.")
        row.mark_used()
        return row
    if not user_has_role(user=creator, role=Role.VIEWER, tenant=row.tenant):
        raise TokenRefused("The staff member who made this token no longer belongs to its tenant; make a new token.")
    if not row.tenant.active:
        raise TokenRefused(f"Tenant {row.tenant.slug!r} is inactive.", status=403, code="tenant_inactive")
    row.mark_used()
    return row


# A Redis outage must not slow every request by a connection timeout: rate limits pause meanwhile.
_redis_down_until = 0.0


def api_rate_take(*, token: ApiToken) -> int | None:
    """Count one request against the token's API_RATE_LIMIT for this minute; the seconds to wait when
    over it, else None. Without Redis the limit is not applied (the API keeps answering)."""
    global _redis_down_until
    limit = settings.API_RATE_LIMIT
    if limit <= 0 or time.monotonic() < _redis_down_until:
        return None
    now = time.time()
    key = f"jobs:api:rate:{token.pk}:{int(now // 60)}"
    try:
        with transport.get_connection().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count = pipe.execute()[0]
    except (RedisError, OSError):
        _redis_down_until = time.monotonic() + 5
        return None
    return int(60 - now % 60) + 1 if count > limit else None


def api_job_enqueue(*, token: ApiToken, kind: str, payload: dict[str, Any], idempotency_key: str | None = None,
                    run_at: datetime | None = None, delay: float | None = None,
                    priority: int = DEFAULT_PRIORITY) -> tuple[Job, bool]:
    """Enqueue a job of a public kind for the token's tenant, as its maker, from the API. Returns the
    job and whether it is new (False: an unfinished job already had the idempotency key).

    Raises ValidationError naming the field (`kind`, `payload.<field>`, `run_at`, `delay`, ...).
    """
    _check_public(kind)
    if run_at is not None:
        try:
            run_at = run_at.astimezone(UTC)
        except OverflowError:
            if run_at > timezone.now():
                raise ValidationError({"run_at": ["Is after the year 9999 (UTC)."]}) from None
            run_at = None  # long past: due now
    started = timezone.now()
    job = enqueue(kind, tenant=token.tenant, payload=payload, user=token.created_by, run_at=run_at, delay=delay,
                  idempotency_key=idempotency_key, source=Source.API, priority=priority)
    return job, job.created_at >= started


def api_job_enqueue_many(*, token: ApiToken, kind: str, payloads: list[dict[str, Any]],
                         priority: int = DEFAULT_PRIORITY) -> list[Job]:
    """Enqueue many jobs of a public kind for the token's tenant in one INSERT, all or nothing; a
    ValidationError names the bad payload's field (`payloads[3].steps`)."""
    _check_public(kind)
    try:
        return enqueue_many(kind, tenant=token.tenant, payloads=payloads, user=token.created_by, source=Source.API,
                            priority=priority)
    except ValidationError as exc:
        raise _item_named(exc, "payloads") from None


def api_batch_enqueue(*, token: ApiToken, kind: str, payloads: list[dict[str, Any]], name: str) -> Batch:
    """A batch of public-kind jobs for the token's tenant, all or nothing (errors name `payloads[i].field`)."""
    _check_public(kind)
    try:
        return batch_enqueue(kind=kind, tenant=token.tenant, payloads=payloads, name=name, user=token.created_by,
                             source=Source.API)
    except ValidationError as exc:
        raise _item_named(exc, "payloads") from None


def api_chain_enqueue(*, token: ApiToken, steps: list[tuple[str, dict[str, Any]]], name: str) -> Batch:
    """A chain of public-kind steps for the token's tenant (errors name `steps[i].field`)."""
    for index, (kind, _) in enumerate(steps):
        if kind not in public_kind_names():
            raise ValidationError({f"steps[{index}].kind": ["Not a job kind this API may start."]})
    try:
        return chain_enqueue(tenant=token.tenant, steps=steps, name=name, user=token.created_by, source=Source.API)
    except ValidationError as exc:
        raise _item_named(exc, "steps") from None


def _item_named(exc: ValidationError, field: str) -> ValidationError:
    # The engine says `payloads[3].payload.steps`; in this body each item is the payload itself.
    return ValidationError({re.sub(rf"^({field}\[\d+\])\.payload\b", r"\1", key): messages
                            for key, messages in exc.message_dict.items()})


def api_tenant_switch(*, token: ApiToken, pause: bool, reason: str = "") -> AuditEvent:
    """The tenant's kill switch through the staff layer, which checks that the token's maker is an admin
    of the tenant now (PermissionDenied, a 403, otherwise); the audit event names the token."""
    switch = staff.staff_tenant_pause if pause else staff.staff_tenant_resume
    return switch(tenant=token.tenant, user=token.created_by, reason=reason)


def api_jobs_clean(*, token: ApiToken, days: int, statuses: list[str], reason: str = "") -> AuditEvent:
    """Delete the tenant's finished jobs of `statuses` that finished more than `days` days ago (pinned ones
    kept), as the admin's Clean does: now, or past JOBS_ADMIN_BULK_THRESHOLD as a tracked background job.
    The maker must be an admin of the tenant now (PermissionDenied otherwise)."""
    maker = _tenant_admin(token, "Cleaning", AuditAction.CLEAN)
    selection = urlencode({"tenant__id__exact": token.tenant.pk, "status__in": ",".join(statuses)})
    return staff.staff_jobs_act_now_or_later(
        action=AuditAction.CLEAN, user=maker, jobs=selectors.job_selection(user=maker, selection=selection),
        selection=selection, reason=reason, tenant=token.tenant, days=days)


def api_queue_empty(*, token: ApiToken, queue: str, reason: str = "") -> AuditEvent:
    """Cancel the tenant's waiting jobs on `queue` (pending, scheduled, queued, retrying), as the queues
    page's "Cancel waiting jobs" does: now, or in the background past the threshold."""
    selection = urlencode({"tenant__id__exact": token.tenant.pk, "queue": queue, "status__in": ",".join(WAITING)})
    maker = token.created_by
    return staff.staff_jobs_act_now_or_later(
        action=AuditAction.CANCEL, user=maker, jobs=selectors.job_selection(user=maker, selection=selection),
        selection=selection, reason=reason, tenant=token.tenant)


def api_queue_switch(*, token: ApiToken, queue: str, pause: bool, reason: str = "") -> AuditEvent:
    """Pause or resume a queue with a platform token, through the staff layer (superusers only, checked now)."""
    switch = staff.staff_queue_pause if pause else staff.staff_queue_resume
    return switch(name=queue, user=token.created_by, reason=reason)


def api_platform_call_record(*, token: ApiToken, action: str, request_line: str, refused: str = "") -> AuditEvent:
    """A platform token's call in the audit trail: every read, and every refused call (a write that is let
    through records its own event, as the admin's does)."""
    outcome = dict(state=AuditState.REFUSED, outcome=f"Refused: {refused}", requested=1, refused=1) if refused else {}
    return audit_event_record(user=token.created_by, action=action, target=f"{request_line} via API token {token}",
                              **outcome)


def _tenant_admin(token: ApiToken, what: str, action: str):
    """The token's maker, if an admin of its tenant now; otherwise a refused audit event of `action` and
    PermissionDenied (a 403), both naming them."""
    maker = token.created_by
    if not user_has_role(user=maker, role=Role.ADMIN, tenant=token.tenant):
        message = (f"{what} needs an admin of {token.tenant}; {maker.get_username()}, who made token "
                   f"{token.prefix}, is not one.")
        _token_event(token=token, action=action, job_id=None, state=AuditState.REFUSED, requested=1, refused=1,
                     outcome=f"Refused: {message}", about=what.lower())
        raise PermissionDenied(message)
    return maker


# --- schedules ----------------------------------------------------------------------------------------

SCHEDULE_FIELDS = ("name", "kind", "payload", "priority", "cron", "timezone", "misfire_policy", "start_at", "end_at",
                   "enabled")


def api_schedule_save(*, token: ApiToken, schedule: Schedule | None, fields: dict[str, Any]) -> Schedule:
    """Make (`schedule` None) or change one of the token's tenant's schedules from `fields`, checked as the
    admin's form checks them (`schedule_check`), all or nothing: a ValidationError names every field at
    fault. Public kinds only; the maker must be an admin of the tenant now. Audited as the admin's save."""
    maker = _tenant_admin(token, "Managing schedules",
                          AuditAction.SCHEDULE_ADD if schedule is None else AuditAction.SCHEDULE_CHANGE)
    if "kind" in fields and fields["kind"] not in public_kind_names() and (
            schedule is None or fields["kind"] != schedule.kind):
        raise ValidationError({"kind": [f"Not a job kind this API may start; public kinds: "
                                        f"{', '.join(public_kind_names()) or 'none'}."]})
    target = schedule or Schedule(tenant=token.tenant)
    before = {name: getattr(target, name) for name in SCHEDULE_FIELDS}
    for name, value in fields.items():
        setattr(target, name, value)
    errors: dict[str, list[str]] = {}
    for name, check in (("cron", cron.cron_check), ("timezone", lambda zone: cron.timezone_check(zone).key)):
        try:
            setattr(target, name, check(getattr(target, name)))
        except ValidationError as exc:
            errors[name] = exc.messages
    try:
        target.payload = schedule_check(kind=target.kind, payload=target.payload,
                                        cron_text="" if "cron" in errors else target.cron,
                                        start_at=target.start_at, end_at=target.end_at)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    taken = Schedule.objects.filter(tenant=token.tenant, name=target.name).exclude(pk=target.pk).exists()
    if taken:
        errors["name"] = [f"{token.tenant} already has a schedule named {target.name!r}."]
    if errors:
        raise ValidationError(errors)
    changed = [name for name in SCHEDULE_FIELDS if getattr(target, name) != before[name]]
    return schedule_save(schedule=target, user=maker, changed=changed)


SCHEDULE_ACTIONS = {"run": AuditAction.SCHEDULE_RUN_NOW, "delete": AuditAction.SCHEDULE_DELETE,
                    "pause": AuditAction.SCHEDULE_PAUSE, "resume": AuditAction.SCHEDULE_RESUME}


def api_schedule_act(*, token: ApiToken, schedule: Schedule, action: str) -> ScheduleRun | None:
    """Pause, resume, run now or delete one of the token's tenant's schedules, as the admin does (the maker
    must be an admin of the tenant now); audited. Run now returns its run (with the job, or why none)."""
    maker = _tenant_admin(token, "Managing schedules", SCHEDULE_ACTIONS[action])
    if action == "run":
        return schedule_run_now(schedule=schedule, user=maker)
    if action == "delete":
        schedule_delete(schedule=schedule, user=maker)
    else:
        schedules_set_enabled(schedules=[schedule], enabled=action == "resume", user=maker)
    return None


def _check_public(kind: str) -> None:
    if kind not in public_kind_names():
        raise ValidationError({"kind": [f"Not a job kind this API may start; public kinds: "
                                        f"{', '.join(public_kind_names()) or 'none'}."]})


def api_job_act(*, token: ApiToken, job: Job, action: str, reason: str = "") -> AuditEvent:
    """Retry or cancel one of the token's tenant's jobs through the staff layer, audited as the token's
    maker acting with that token. The event says whether it was done, skipped (not in a state the
    action applies to) or refused (the maker's role no longer allows it)."""
    user = token.created_by
    with transaction.atomic():
        event = _token_event(token=token, action=action, job_id=job.pk, reason=reason, state=AuditState.RUNNING)
        return staff.staff_jobs_act(action=action, user=user, jobs=Job.objects.filter(pk=job.pk, tenant=token.tenant),
                                    reason=reason, event=event)


def _token_event(*, token: ApiToken, action: str, job_id: UUID | None, state: str, about: str = "",
                 **fields) -> AuditEvent:
    """An audit event in the name of the token's maker, saying which token acted (on `job_id`, or on what
    `about` names)."""
    subject = f"job {job_id}" if job_id else about or "the API"
    return audit_event_record(user=token.created_by, action=action, tenant=token.tenant, state=state,
                              target=f"{subject} via API token {token}", **fields)
