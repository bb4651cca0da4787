"""The JSON API for integrating code, `/api/v1/`: a tenant's jobs, read and started with its API token.

Views only coordinate: the token comes from `TokenAuth`, reads from `jobs.api.selectors`, writes from
`jobs.api.services`. Session logins are not accepted here (only `Authorization: Bearer`), so CSRF
does not apply.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from ninja import Body, NinjaAPI, Query, Status
from ninja.security.http import HttpAuthBase

from jobs import staff
from jobs.api import errors, schemas, selectors, services
from jobs.api.errors import ApiError
from jobs.api.models import ApiToken
from jobs.batches import batch_counts
from jobs.models import UNFINISHED, AuditAction, AuditState, Job
from jobs.selectors import global_limit_rows
from jobs.services import RETRYABLE
from jobs.stats import finished_figures
from tenants.models import Tenant

PUBLIC_KINDS = selectors.api_kind_list()
EnqueueIn = schemas.enqueue_schema(PUBLIC_KINDS)
BulkIn = schemas.bulk_schema(PUBLIC_KINDS)
BatchIn = schemas.batch_schema(PUBLIC_KINDS)
ChainIn = schemas.chain_schema(PUBLIC_KINDS)
ScheduleIn = schemas.schedule_schema(PUBLIC_KINDS)
ScheduleChangeIn = schemas.schedule_change_schema(PUBLIC_KINDS)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a platform token (no tenant) may reach, by URL name; a tenant's token reaches everything else.
PLATFORM_OPERATIONS = frozenset({"platform_queues", "platform_limits", "platform_tenants", "platform_stats",
                                 "queue_pause", "queue_resume"})
ANY_TOKEN = frozenset({"token_get"})
# The job actions the audit trail has an action of their own for, by URL name; any other refused write
# (an enqueue, say) is recorded as an API write naming the request.
AUDITED_WRITES = {"job_retry": AuditAction.RETRY, "job_cancel": AuditAction.CANCEL, "job_stop": AuditAction.STOP,
                  "job_delete": AuditAction.DELETE, "tenant_pause": AuditAction.TENANT_PAUSE,
                  "tenant_resume": AuditAction.TENANT_RESUME, "job_clean": AuditAction.CLEAN,
                  "queue_empty": AuditAction.CANCEL, "queue_pause": AuditAction.PAUSE_QUEUE,
                  "queue_resume": AuditAction.RESUME_QUEUE, "schedule_create": AuditAction.SCHEDULE_ADD,
                  "schedule_change": AuditAction.SCHEDULE_CHANGE, "schedule_delete": AuditAction.SCHEDULE_DELETE,
                  "schedule_pause": AuditAction.SCHEDULE_PAUSE, "schedule_resume": AuditAction.SCHEDULE_RESUME,
                  "schedule_run": AuditAction.SCHEDULE_RUN_NOW}


class TokenAuth(HttpAuthBase):
    """`Authorization: Bearer <token>`; the token's row (tenant, scope, maker) becomes `request.auth`.

    Every operation passes here, so this is where a write (any method but GET, HEAD or OPTIONS) is let
    through or refused, and where a platform token is kept to the platform's operations and a tenant's
    token to its tenant's: an operation added later is covered without a check of its own. Every audit
    event the request records names the token (`staff.acting_through`); a platform token's every call is
    one.
    """

    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None  # 401, the same as no header
        token = services.api_token_use(presented=presented.strip())
        staff.acting_through.set(f"API token {token.prefix}")
        wait = services.api_rate_take(token=token)
        if wait is not None:
            raise ApiError(429, f"Over {token.prefix}'s limit of requests per minute; try again in {wait} s.",
                           headers={"Retry-After": str(wait)})
        match = request.resolver_match
        request_line = f"{request.method} {request.path}"
        write = request.method not in READ_METHODS
        action = AUDITED_WRITES.get(match.url_name, AuditAction.API_WRITE) if write else AuditAction.API_READ
        try:
            _check_reach(token, match.url_name)
            if write:
                services.api_token_authorize_write(token=token, action=action, job_id=match.kwargs.get("job_id"),
                                                   request_line=request_line)
        except (ApiError, services.TokenRefused) as exc:
            if token.is_platform:  # its every call is recorded, a refused one too
                services.api_platform_call_record(token=token, action=action, request_line=request_line,
                                                  refused=str(exc))
            raise
        if token.is_platform and not write:  # a write records its own event
            services.api_platform_call_record(token=token, action=action, request_line=request_line)
        return token


def _check_reach(token: ApiToken, operation: str) -> None:
    """A platform token reaches the platform's operations only; a tenant's token, everything else."""
    if operation in ANY_TOKEN:
        return
    if token.is_platform and operation not in PLATFORM_OPERATIONS:
        raise ApiError(403, f"Token {token.prefix} is a platform token: it reaches /platform and the queues' "
                            "pause and resume; a tenant's jobs, schedules and batches need that tenant's token.",
                       code="platform_token")
    if not token.is_platform and operation in PLATFORM_OPERATIONS:
        raise ApiError(403, f"This needs a platform token (made by a superuser, tied to no tenant); token "
                            f"{token.prefix} is {token.tenant.slug}'s.", code="needs_platform_token")


api = NinjaAPI(
    title="Tracked Jobs API",
    version="1",
    description="A tenant's background jobs for integrating code. Authenticate with "
                "`Authorization: Bearer <token>` (tokens are made in the admin, per tenant). A token acts with "
                "its maker's role as it is at each request: reads need a viewer, writes a read-write token "
                "and an operator (or admin; schedules, cleaning and the kill switch need an admin), else 403 "
                "`forbidden_role`. Platform tokens (made by superusers, tied to no tenant) reach only the "
                "`platform` operations and `GET /token`. "
                "Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
    urls_namespace="api-v1",
    auth=TokenAuth(),
)
errors.install(api, tags=frozenset(kind.name for kind in PUBLIC_KINDS))

ERROR = schemas.ErrorOut
# Every operation may answer these: no or bad token, inactive tenant or scope, bad input, over the limit.
COMMON = {400: ERROR, 401: ERROR, 403: ERROR, 422: ERROR, 429: ERROR}
# And those with a body: one over DATA_UPLOAD_MAX_MEMORY_SIZE.
WITH_BODY = {**COMMON, 413: ERROR}


def _token(request: HttpRequest) -> ApiToken:
    return request.auth  # type: ignore[attr-defined]


@api.get("/jobs", response={200: schemas.JobPage, **COMMON}, summary="List jobs", tags=["jobs"])
def job_list(request: HttpRequest, filters: Query[schemas.JobFilters]) -> Any:
    """The tenant's jobs, newest first, a page at a time: follow `next_cursor` until it is null."""
    wanted = selectors.JobFilter(statuses=tuple(filters.status), kind=filters.kind, queue=filters.queue,
                                 created_after=filters.created_after, created_before=filters.created_before,
                                 has_error=filters.has_error, search=filters.q or "")
    jobs, next_cursor = selectors.api_job_page(tenant=_token(request).tenant, filters=wanted, limit=filters.limit,
                                               cursor=filters.cursor)
    return {"items": [schemas.JobSummary.of(job) for job in jobs], "next_cursor": next_cursor}


@api.post("/jobs", response={200: schemas.JobDetail, 201: schemas.JobDetail, **WITH_BODY}, summary="Enqueue a job",
          tags=["jobs"])
def job_enqueue(request: HttpRequest, data: Body[EnqueueIn]) -> Any:
    """Start a job of a public kind (see `GET /kinds`). 201 with the new job; 200 with the earlier one
    when an unfinished job already has this idempotency key. Needs a read-write token."""
    token = _token(request)
    job, created = services.api_job_enqueue(token=token, kind=data.kind, payload=data.payload,
                                            idempotency_key=data.idempotency_key, run_at=data.run_at,
                                            delay=data.delay, priority=data.priority)
    return Status(201 if created else 200, schemas.JobDetail.of(job))


@api.get("/jobs/{uuid:job_id}", response={200: schemas.JobDetail, 404: ERROR, **COMMON}, summary="Get a job",
         tags=["jobs"])
def job_get(request: HttpRequest, job_id: UUID) -> Any:
    """One job: status, progress, result, error and every attempt."""
    return schemas.JobDetail.of(selectors.api_job_get(tenant=_token(request).tenant, job_id=job_id))


def _act(request: HttpRequest, job_id: UUID, data: schemas.ActionIn | None, action: str) -> schemas.JobDetail:
    token = _token(request)
    job = selectors.api_job_get(tenant=token.tenant, job_id=job_id)
    event = services.api_job_act(token=token, job=job, action=action, reason=data.reason if data else "")
    job = selectors.api_job_get(tenant=token.tenant, job_id=job_id)
    if event.refused:  # demoted between TokenAuth's check and the action
        raise ApiError(403, f"{token.created_by.get_username()}, who made token {token.prefix}, no longer holds "
                            f"the {services.WRITE_ROLE} role in {token.tenant}.", code="forbidden_role")
    if not event.done:
        raise ApiError(409, _conflict(job, action), code="job_state")
    return schemas.JobDetail.of(job)


def _conflict(job: Job, action: str) -> str:
    if action == AuditAction.STOP:
        return f"Job {job.short_id} is {job.status}; only a running job can be stopped."
    if action == AuditAction.DELETE:
        return f"Job {job.short_id} is {job.status}; only a finished job's record can be removed."
    if action == AuditAction.CANCEL:
        return f"Job {job.short_id} is {job.status}; only waiting jobs (pending, scheduled, queued, retrying) " \
               "can be cancelled."
    if job.status in RETRYABLE:
        return f"Job {job.short_id} cannot be retried: another unfinished job holds its idempotency key."
    return f"Job {job.short_id} is {job.status}; only failed or cancelled jobs can be retried."


@api.post("/jobs/{uuid:job_id}/retry", response={200: schemas.JobDetail, 404: ERROR, 409: ERROR, **WITH_BODY},
          summary="Retry a job", tags=["jobs"])
def job_retry(request: HttpRequest, job_id: UUID, data: Body[schemas.ActionIn] = None) -> Any:
    """Start a new attempt of a failed or cancelled job (409 otherwise), as the admin's Retry does;
    recorded in the audit trail with the token. Needs a read-write token."""
    return _act(request, job_id, data, AuditAction.RETRY)


@api.post("/jobs/{uuid:job_id}/cancel", response={200: schemas.JobDetail, 404: ERROR, 409: ERROR, **WITH_BODY},
          summary="Cancel a job", tags=["jobs"])
def job_cancel(request: HttpRequest, job_id: UUID, data: Body[schemas.ActionIn] = None) -> Any:
    """Cancel a job that has not started (409 otherwise), as the admin's Cancel does; recorded in the
    audit trail with the token. Needs a read-write token."""
    return _act(request, job_id, data, AuditAction.CANCEL)


@api.post("/jobs/{uuid:job_id}/stop", response={200: schemas.JobDetail, 404: ERROR, 409: ERROR, **WITH_BODY},
          summary="Stop a running job", tags=["jobs"])
def job_stop(request: HttpRequest, job_id: UUID, data: Body[schemas.ActionIn] = None) -> Any:
    """Stop a running job (409 otherwise), as the admin's Stop does: its worker ends the attempt (recorded
    as stopped) and the job is cancelled; in the audit trail with the token. Needs a read-write token."""
    return _act(request, job_id, data, AuditAction.STOP)


@api.delete("/jobs/{uuid:job_id}", response={204: None, 404: ERROR, 409: ERROR, **COMMON},
            summary="Remove a finished job's record", tags=["jobs"])
def job_delete(request: HttpRequest, job_id: UUID) -> Any:
    """Delete a finished job's record with its attempts (409 while it is unfinished), as the admin's
    "Delete record" does: needs a read-write token whose maker is an admin of the tenant (403
    `forbidden_role` for an operator); in the audit trail with the token."""
    token = _token(request)
    job = selectors.api_job_get(tenant=token.tenant, job_id=job_id)
    event = services.api_job_act(token=token, job=job, action=AuditAction.DELETE)
    if event.refused:
        raise ApiError(403, f"Removing records needs an admin of {token.tenant}; "
                            f"{token.created_by.get_username()}, who made token {token.prefix}, is not one.",
                       code="forbidden_role")
    if not event.done:
        raise ApiError(409, _conflict(job, AuditAction.DELETE), code="job_state")
    return Status(204, None)


@api.post("/jobs/bulk", response={201: schemas.BulkOut, **WITH_BODY}, summary="Enqueue many jobs of one kind",
          tags=["jobs"])
def job_enqueue_bulk(request: HttpRequest, data: Body[BulkIn]) -> Any:
    """Up to 1,000 jobs of one public kind in one request and one INSERT, all or nothing: one bad payload
    refuses them all, naming it (`payloads[3].steps`). 201 with the new jobs' ids, in order. Needs a
    read-write token."""
    jobs = services.api_job_enqueue_many(token=_token(request), kind=data.kind, payloads=data.payloads,
                                         priority=data.priority)
    return Status(201, {"ids": [job.pk for job in jobs], "count": len(jobs)})


@api.post("/jobs/clean", response={200: schemas.ActionOut, 202: schemas.ActionOut, **WITH_BODY},
          summary="Clean finished jobs", tags=["jobs"])
def job_clean(request: HttpRequest, data: Body[schemas.CleanIn]) -> Any:
    """Delete the tenant's finished jobs (`statuses`) that finished more than `days` days ago, pinned ones
    kept, as the admin's Clean does. 200 with the audit event when done at once; past the admin's bulk
    threshold it runs in the background: 202 with the event and its job. Needs a read-write token whose
    maker is an admin of the tenant."""
    event = services.api_jobs_clean(token=_token(request), days=data.days, statuses=data.statuses,
                                    reason=data.reason)
    return Status(202 if event.state == AuditState.RUNNING else 200, schemas.ActionOut.of(event))


@api.post("/queues/{name}/empty", response={200: schemas.ActionOut, 202: schemas.ActionOut, 404: ERROR, **WITH_BODY},
          summary="Cancel the tenant's waiting jobs on a queue", tags=["queues"])
def queue_empty(request: HttpRequest, name: str, data: Body[schemas.ActionIn] = None) -> Any:
    """Cancel the tenant's pending, scheduled, queued and retrying jobs on the queue (other tenants' stay),
    as the queues page does: 200 with the audit event, or 202 when it runs in the background. Needs a
    read-write token."""
    _known_queue(name)
    event = services.api_queue_empty(token=_token(request), queue=name, reason=data.reason if data else "")
    return Status(202 if event.state == AuditState.RUNNING else 200, schemas.ActionOut.of(event))


@api.post("/tenant/pause", response={200: schemas.TenantStateOut, **WITH_BODY}, summary="Pause the tenant's work",
          tags=["tenant"])
def tenant_pause(request: HttpRequest, data: Body[schemas.ActionIn] = None) -> Any:
    """The kill switch: none of the tenant's jobs starts until resumed (waiting ones stay in the database,
    those in Redis are taken back; running ones finish). Needs a read-write token whose maker is an admin
    of the tenant; in the audit trail with the token."""
    return _tenant_switch(request, data, pause=True)


@api.post("/tenant/resume", response={200: schemas.TenantStateOut, **WITH_BODY}, summary="Resume the tenant's work",
          tags=["tenant"])
def tenant_resume(request: HttpRequest, data: Body[schemas.ActionIn] = None) -> Any:
    """Undo the kill switch: the tenant's waiting jobs are handed over as its limit allows. Needs a read-write
    token whose maker is an admin of the tenant; in the audit trail with the token."""
    return _tenant_switch(request, data, pause=False)


def _tenant_switch(request: HttpRequest, data: schemas.ActionIn | None, *, pause: bool) -> dict:
    token = _token(request)
    services.api_tenant_switch(token=token, pause=pause, reason=data.reason if data else "")
    token.tenant.refresh_from_db(fields=["paused_at"])
    return {"slug": token.tenant.slug, "paused": token.tenant.paused_at is not None,
            "paused_at": token.tenant.paused_at}


@api.post("/batches", response={201: schemas.BatchOut, **WITH_BODY}, summary="Start a batch", tags=["batches"])
def batch_create(request: HttpRequest, data: Body[BatchIn]) -> Any:
    """Jobs of one public kind run side by side as a named batch (one INSERT), all or nothing: a bad payload
    refuses them all, naming it (`payloads[2].steps`). Needs a read-write token."""
    batch = services.api_batch_enqueue(token=_token(request), kind=data.kind, payloads=data.payloads, name=data.name)
    return Status(201, _batch_out(batch))


@api.post("/chains", response={201: schemas.BatchOut, **WITH_BODY}, summary="Start a chain", tags=["batches"])
def chain_create(request: HttpRequest, data: Body[ChainIn]) -> Any:
    """Steps of public kinds run one after the other, each once the one before succeeded; a failed step
    stops the chain. All or nothing: a bad step refuses the chain, naming it (`steps[1].steps`). Needs a
    read-write token."""
    batch = services.api_chain_enqueue(token=_token(request), steps=[(step.kind, step.payload) for step in data.steps],
                                       name=data.name)
    return Status(201, _batch_out(batch))


@api.get("/batches", response={200: list[schemas.BatchOut], **COMMON}, summary="List batches and chains",
         tags=["batches"])
def batch_list(request: HttpRequest) -> Any:
    """The tenant's 100 newest batches and chains, with their members' counts by status."""
    return [_batch_out(batch) for batch in selectors.api_batch_list(tenant=_token(request).tenant)]


@api.get("/batches/{int:batch_id}", response={200: schemas.BatchOut, 404: ERROR, **COMMON},
         summary="Get a batch or chain", tags=["batches"])
def batch_get(request: HttpRequest, batch_id: int) -> Any:
    """One batch or chain of the tenant's, with its members' counts by status."""
    return _batch_out(selectors.api_batch_get(tenant=_token(request).tenant, batch_id=batch_id))


def _batch_out(batch) -> dict:
    first = Job.objects.filter(batch=batch).order_by("batch_position", "id").values_list("pk", flat=True).first()
    return {"id": batch.pk, "name": batch.name, "chain": batch.sequential, "total": batch.total,
            "counts": batch_counts(batch=batch), "finished_at": batch.finished_at, "created_at": batch.created_at,
            "first_job": first}


@api.get("/queues", response={200: schemas.QueuesOut, **COMMON}, summary="Queue statistics", tags=["queues"])
def queue_list(request: HttpRequest) -> Any:
    """Per queue, the tenant's unfinished jobs by status, recent failures and the oldest waiting job's age."""
    tenant = _token(request).tenant
    return {"tenant_paused": tenant.paused_at is not None,
            "queues": [_queue_fields(row) for row in selectors.api_queue_stats(tenant=tenant)]}


def _queue_fields(row) -> dict:
    return {"name": row.name, "counts": row.counts, "waiting": row.waiting, "failed_last_hour": row.failed_hour,
            "failed_last_day": row.failed_day, "paused": row.paused_at is not None,
            "oldest_waiting_seconds": row.oldest_waiting_age.total_seconds() if row.oldest_waiting_age else None}


@api.get("/tenant/stats", response={200: schemas.TenantOverviewOut, **COMMON}, summary="The tenant's figures",
         tags=["tenant"])
def tenant_stats(request: HttpRequest, query: Query[schemas.StatsQuery]) -> Any:
    """The tenant's state (kill switch, limit), its unfinished jobs by status, recent failures, and what it
    finished over the range with wait and run percentiles, per kind too: the home dashboard's figures."""
    tenant = _token(request).tenant
    [row] = selectors.api_tenant_stats(tenants=Tenant.objects.filter(pk=tenant.pk))
    figures = finished_figures(tenant_ids=[tenant.pk], range_key=query.range)
    return {**schemas.TenantStatsOut.of(row).model_dump(), "figures": schemas.StatsOut.of(figures)}


# --- schedules (tenant admins' tokens write) ------------------------------------------------------------


@api.get("/schedules", response={200: list[schemas.ScheduleOut], **COMMON}, summary="List schedules",
         tags=["schedules"])
def schedule_list(request: HttpRequest) -> Any:
    """The tenant's schedules, by name, with each one's next and last run."""
    return [schemas.ScheduleOut.of(schedule) for schedule in selectors.api_schedule_list(tenant=_token(request).tenant)]


@api.post("/schedules", response={201: schemas.ScheduleOut, **WITH_BODY}, summary="Add a schedule",
          tags=["schedules"])
def schedule_create(request: HttpRequest, data: Body[ScheduleIn]) -> Any:
    """A schedule of a public kind, checked as the admin's form checks it (the payload against the kind, the
    cron text, the time zone, `@every` below a minute only for kinds that allow it); every field at fault is
    named. Needs a read-write token whose maker is an admin of the tenant."""
    token = _token(request)
    schedule = services.api_schedule_save(token=token, schedule=None, fields=data.model_dump())
    return Status(201, schemas.ScheduleOut.of(selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule.pk)))


@api.get("/schedules/{int:schedule_id}", response={200: schemas.ScheduleOut, 404: ERROR, **COMMON},
         summary="Get a schedule", tags=["schedules"])
def schedule_get(request: HttpRequest, schedule_id: int) -> Any:
    return schemas.ScheduleOut.of(selectors.api_schedule_get(tenant=_token(request).tenant, schedule_id=schedule_id))


@api.patch("/schedules/{int:schedule_id}", response={200: schemas.ScheduleOut, 404: ERROR, **WITH_BODY},
           summary="Change a schedule", tags=["schedules"])
def schedule_change(request: HttpRequest, schedule_id: int, data: Body[ScheduleChangeIn]) -> Any:
    """Change the fields given, checked together with those kept; a change of timing owes no runs the old
    timing missed. Needs a read-write token whose maker is an admin of the tenant."""
    token = _token(request)
    schedule = selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule_id)
    services.api_schedule_save(token=token, schedule=schedule, fields=data.model_dump(exclude_unset=True))
    return schemas.ScheduleOut.of(selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule_id))


@api.delete("/schedules/{int:schedule_id}", response={204: None, 404: ERROR, **COMMON}, summary="Delete a schedule",
            tags=["schedules"])
def schedule_delete(request: HttpRequest, schedule_id: int) -> Any:
    """Delete the schedule and its run records (the jobs it started stay). Needs a read-write token whose
    maker is an admin of the tenant."""
    _schedule_act(request, schedule_id, "delete")
    return Status(204, None)


@api.post("/schedules/{int:schedule_id}/pause", response={200: schemas.ScheduleOut, 404: ERROR, **WITH_BODY},
          summary="Pause a schedule", tags=["schedules"])
def schedule_pause(request: HttpRequest, schedule_id: int) -> Any:
    """It fires nothing until resumed. Needs a read-write token whose maker is an admin of the tenant."""
    return schemas.ScheduleOut.of(_schedule_act(request, schedule_id, "pause"))


@api.post("/schedules/{int:schedule_id}/resume", response={200: schemas.ScheduleOut, 404: ERROR, **WITH_BODY},
          summary="Resume a schedule", tags=["schedules"])
def schedule_resume(request: HttpRequest, schedule_id: int) -> Any:
    """It fires again from its next fire time; what it missed while paused is not caught up. Needs a
    read-write token whose maker is an admin of the tenant."""
    return schemas.ScheduleOut.of(_schedule_act(request, schedule_id, "resume"))


@api.post("/schedules/{int:schedule_id}/run", response={201: schemas.ScheduleRunOut, 404: ERROR, 409: ERROR,
                                                        **WITH_BODY}, summary="Run a schedule now", tags=["schedules"])
def schedule_run(request: HttpRequest, schedule_id: int) -> Any:
    """Enqueue its job once now, outside its timing (its next run is unchanged): 201 with the run and its job;
    409 when the job was refused (its payload no longer fits the kind, say). Needs a read-write token whose
    maker is an admin of the tenant."""
    token = _token(request)
    schedule = selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule_id)
    run = services.api_schedule_act(token=token, schedule=schedule, action="run")
    if run.job_id is None:
        raise ApiError(409, f"Schedule {schedule.name!r} could not enqueue its job: {run.note}", code="job_refused")
    return Status(201, schemas.ScheduleRunOut.of(run))


def _schedule_act(request: HttpRequest, schedule_id: int, action: str):
    """The schedule as it is after the action (None once deleted)."""
    token = _token(request)
    schedule = selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule_id)
    services.api_schedule_act(token=token, schedule=schedule, action=action)
    return None if action == "delete" else selectors.api_schedule_get(tenant=token.tenant, schedule_id=schedule_id)


# --- the platform (platform tokens only) --------------------------------------------------------------


@api.get("/platform/queues", response={200: list[schemas.PlatformQueueOut], **COMMON},
         summary="Every queue's statistics", tags=["platform"])
def platform_queues(request: HttpRequest) -> Any:
    """The queues page: per queue, every tenant's unfinished jobs by status and by tenant, recent failures,
    the oldest waiting job, whether it is paused and how many workers listen. Platform tokens only."""
    return [{**_queue_fields(row), "paused_at": row.paused_at, "workers": row.workers,
             "tenants": [{"tenant": tenant, "counts": {**dict.fromkeys(UNFINISHED, 0), **counts}}
                         for tenant, counts in row.tenants]}
            for row in selectors.api_queue_stats(tenant=None)]


@api.get("/platform/limits", response={200: list[schemas.LimitOut], **COMMON},
         summary="Limits across tenants", tags=["platform"])
def platform_limits(request: HttpRequest) -> Any:
    """Each kind and queue limited across every tenant, with the jobs under it queued or running and those
    waiting for it, as the queues page shows them. Platform tokens only."""
    return [schemas.LimitOut.of(row) for row in global_limit_rows(jobs=Job.objects.all())]


@api.get("/platform/tenants", response={200: list[schemas.TenantStatsOut], **COMMON},
         summary="Every tenant's state and counts", tags=["platform"])
def platform_tenants(request: HttpRequest) -> Any:
    """Per tenant, by slug: active, paused, its concurrency limit, its unfinished jobs by status, its failures
    of the last hour and day. Platform tokens only."""
    return [schemas.TenantStatsOut.of(row) for row in selectors.api_tenant_stats(tenants=Tenant.objects.all())]


@api.get("/platform/stats", response={200: schemas.StatsOut, **COMMON}, summary="What the platform finished",
         tags=["platform"])
def platform_stats(request: HttpRequest, query: Query[schemas.StatsQuery]) -> Any:
    """Jobs finished over the range by every tenant and the system, with wait and run percentiles, per kind
    too: the home dashboard's figures as a superuser sees them. Platform tokens only."""
    return schemas.StatsOut.of(finished_figures(tenant_ids=None, range_key=query.range))


@api.post("/queues/{name}/pause", response={200: schemas.ActionOut, 404: ERROR, **WITH_BODY}, summary="Pause a queue",
          tags=["platform"])
def queue_pause(request: HttpRequest, name: str, data: Body[schemas.ActionIn] = None) -> Any:
    """No job of the queue starts until resumed, in any tenant: its waiting jobs stay in the database (those in
    Redis are taken back), running ones finish. A read-write platform token; in the audit trail with it."""
    return _queue_switch(request, name, data, pause=True)


@api.post("/queues/{name}/resume", response={200: schemas.ActionOut, 404: ERROR, **WITH_BODY},
          summary="Resume a queue", tags=["platform"])
def queue_resume(request: HttpRequest, name: str, data: Body[schemas.ActionIn] = None) -> Any:
    """The queue's waiting jobs are handed to workers again. A read-write platform token; in the audit trail
    with it."""
    return _queue_switch(request, name, data, pause=False)


def _queue_switch(request: HttpRequest, name: str, data: schemas.ActionIn | None, *, pause: bool) -> Any:
    _known_queue(name)
    event = services.api_queue_switch(token=_token(request), queue=name, pause=pause, reason=data.reason if data else "")
    return schemas.ActionOut.of(event)


def _known_queue(name: str) -> None:
    if name not in settings.RQ_QUEUES:
        raise ApiError(404, f"No queue {name!r}; the queues are {', '.join(settings.RQ_QUEUES)}.")


@api.get("/kinds", response={200: list[schemas.KindOut], **COMMON}, summary="Job kinds a token may start",
         tags=["kinds"])
def kind_list(request: HttpRequest) -> Any:
    """The public kinds, each with its payload's JSON Schema."""
    return [{"name": kind.name, "queue": kind.queue, "max_attempts": kind.max_attempts,
             "timeout_seconds": kind.timeout, "description": (kind.handler.__doc__ or "").strip(),
             "payload_schema": schemas.payload_json_schema(kind)} for kind in PUBLIC_KINDS]


@api.get("/token", response={200: schemas.TokenOut, **COMMON}, summary="The token in use", tags=["token"])
def token_get(request: HttpRequest) -> Any:
    """Which token this is: its name, prefix, scope and tenant (none, for a platform token)."""
    token = _token(request)
    tenant = None if token.is_platform else {"slug": token.tenant.slug, "name": token.tenant.name}
    return {"name": token.name, "prefix": token.prefix, "scope": token.scope, "platform": token.is_platform,
            "tenant": tenant, "created_at": token.created_at, "last_used_at": token.last_used_at}
