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

from jobs.api import errors, schemas, selectors, services
from jobs.api.errors import ApiError
from jobs.api.models import ApiToken
from jobs.batches import batch_counts
from jobs.models import AuditAction, AuditState, Job
from jobs.services import RETRYABLE

PUBLIC_KINDS = selectors.api_kind_list()
EnqueueIn = schemas.enqueue_schema(PUBLIC_KINDS)
BulkIn = schemas.bulk_schema(PUBLIC_KINDS)
BatchIn = schemas.batch_schema(PUBLIC_KINDS)
ChainIn = schemas.chain_schema(PUBLIC_KINDS)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The job actions the audit trail has an action of their own for, by URL name; any other refused write
# (an enqueue, say) is recorded as an API write naming the request.
AUDITED_WRITES = {"job_retry": AuditAction.RETRY, "job_cancel": AuditAction.CANCEL, "job_stop": AuditAction.STOP,
                  "job_delete": AuditAction.DELETE, "tenant_pause": AuditAction.TENANT_PAUSE,
                  "tenant_resume": AuditAction.TENANT_RESUME, "job_clean": AuditAction.CLEAN,
                  "queue_empty": AuditAction.CANCEL}


class TokenAuth(HttpAuthBase):
    """`Authorization: Bearer <token>`; the token's row (tenant, scope, maker) becomes `request.auth`.

    Every operation passes here, so this is where a write (any method but GET, HEAD or OPTIONS) is let
    through or refused: an operation added later is covered without a check of its own.
    """

    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None  # 401, the same as no header
        token = services.api_token_use(presented=presented.strip())
        wait = services.api_rate_take(token=token)
        if wait is not None:
            raise ApiError(429, f"Over {token.prefix}'s limit of requests per minute; try again in {wait} s.",
                           headers={"Retry-After": str(wait)})
        if request.method not in READ_METHODS:
            match = request.resolver_match
            services.api_token_authorize_write(
                token=token, action=AUDITED_WRITES.get(match.url_name, AuditAction.API_WRITE),
                job_id=match.kwargs.get("job_id"), request_line=f"{request.method} {request.path}")
        return token


api = NinjaAPI(
    title="Tracked Jobs API",
    version="1",
    description="A tenant's background jobs for integrating code. Authenticate with "
                "`Authorization: Bearer <token>` (tokens are made in the admin, per tenant). A token acts with "
                "its maker's role as it is at each request: reads need a viewer, writes a read-write token "
                "and an operator (or admin), else 403 `forbidden_role`. "
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
    if name not in settings.RQ_QUEUES:
        raise ApiError(404, f"No queue {name!r}; the queues are {', '.join(settings.RQ_QUEUES)}.")
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
    queues = [{"name": row.name, "counts": row.counts, "waiting": row.counts["pending"] + row.counts["queued"],
               "failed_last_hour": row.failed_last_hour, "failed_last_day": row.failed_last_day,
               "oldest_waiting_seconds": row.oldest_waiting_seconds, "paused": row.paused}
              for row in selectors.api_queue_stats(tenant=tenant)]
    return {"tenant_paused": tenant.paused_at is not None, "queues": queues}


@api.get("/kinds", response={200: list[schemas.KindOut], **COMMON}, summary="Job kinds a token may start",
         tags=["kinds"])
def kind_list(request: HttpRequest) -> Any:
    """The public kinds, each with its payload's JSON Schema."""
    return [{"name": kind.name, "queue": kind.queue, "max_attempts": kind.max_attempts,
             "timeout_seconds": kind.timeout, "description": (kind.handler.__doc__ or "").strip(),
             "payload_schema": schemas.payload_json_schema(kind)} for kind in PUBLIC_KINDS]


@api.get("/token", response={200: schemas.TokenOut, **COMMON}, summary="The token in use", tags=["token"])
def token_get(request: HttpRequest) -> Any:
    """Which token this is: its name, prefix, scope and tenant."""
    token = _token(request)
    return {"name": token.name, "prefix": token.prefix, "scope": token.scope,
            "tenant": {"slug": token.tenant.slug, "name": token.tenant.name}, "created_at": token.created_at,
            "last_used_at": token.last_used_at}
