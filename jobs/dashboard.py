"""The django-rq dashboard at /admin/rq/: superusers only, and true to the record.

django-rq's pages show what Redis holds (read safely: `jobs.rq_lockdown`). Its buttons would act on
Redis alone, around the record: a requeued failed job found nothing to claim, an emptied queue came
back at the next reconcile pass. Here every button is the engine's own audited staff action on the
job's record, in the superuser's name, chosen by what the record says of the job:

    delete   waiting: cancel;  finished: delete the record;  running: nothing (use Stop)
    requeue  failed or cancelled: retry
    stop     running: stop
    empty    every waiting job of the queue: cancel
    enqueue  (a deferred or scheduled RQ job) not offered: the engine never leaves its jobs there

An RQ job with no record is not the engine's (someone wrote it into Redis): it can only be deleted
from Redis, which is audited too. The dashboard's home page sets RQ's counts beside the record's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django_rq.settings import get_queues_list, get_queues_map
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns
from django_rq.utils import get_statistics

from jobs import selectors, staff, transport
from jobs.bearer import bearer_matches
from jobs.models import TERMINAL, WAITING, AuditAction, AuditEvent, AuditState, Job, Status

DASHBOARD = "django-rq dashboard"


def superuser_only(view: Callable) -> Callable:
    """django-rq checks only `is_staff`; its dashboard shows every tenant's jobs, so superusers only."""
    protected = admin.site.admin_view(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_superuser:
            raise PermissionDenied
        return protected(request, *args, **kwargs)

    return wrapper


def bearer_or_superuser(view: Callable) -> Callable:
    """stats.json and metrics: a superuser's session, or `Authorization: Bearer <RQ_API_TOKEN>`.

    django-rq alone would also accept any staff session, or the token inside the URL (where it ends
    up in access logs and browser history); neither is accepted here.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if bearer_matches(request, settings.RQ_API_TOKEN):
            return view(request)
        if request.user.is_authenticated and request.user.is_superuser:
            return view(request)
        if request.user.is_authenticated:
            raise PermissionDenied
        return JsonResponse({"error": "unauthorized", "message": "Send Authorization: Bearer <RQ_API_TOKEN>."},
                            status=401, headers={"WWW-Authenticate": "Bearer"})

    return wrapper


def job_url(job: Job) -> str | None:
    """The job's page in the dashboard, while Redis holds it (None otherwise, or when Redis is down)."""
    index = get_queues_map().get(job.queue)  # django-rq numbers queues in name order
    if index is None:
        return None
    try:
        held = transport.holds(str(job.pk))
    except transport.TransportError:
        return None
    return reverse("django_rq:job_detail", args=[index, str(job.pk)]) if held else None


# --- What a button does --------------------------------------------------------------------------

@dataclass
class Plan:
    """What one of the dashboard's verbs does to the RQ jobs it was given, by their records."""

    verb: str
    steps: list[tuple[str, list[UUID]]] = field(default_factory=list)  # (staff action, job ids)
    untouched: list[tuple[str, list[str]]] = field(default_factory=list)  # (why, RQ job ids)
    unrecorded: list[str] = field(default_factory=list)  # RQ job ids without a record: removed from Redis

    @property
    def empty(self) -> bool:
        return not (self.steps or self.unrecorded)


# For each verb: (statuses, the staff action taken on jobs in them), in order; jobs in no listed status
# are left as they are, with the reason shown.
VERBS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "delete": [(WAITING, AuditAction.CANCEL), (TERMINAL, AuditAction.DELETE)],
    "requeue": [((Status.FAILED, Status.CANCELLED), AuditAction.RETRY)],
    "stop": [((Status.RUNNING,), AuditAction.STOP)],
}
LEFT_BECAUSE = {
    "delete": "running: stop it instead",
    "requeue": "not failed or cancelled in the record",
    "stop": "not running in the record",
}


def plan(verb: str, rq_ids: list[str]) -> Plan:
    recorded = _records(rq_ids)
    result = Plan(verb=verb, unrecorded=[rq_id for rq_id in rq_ids if rq_id not in recorded])
    if verb != "delete" and result.unrecorded:
        result.untouched.append(("not a job of this system (no record): it can only be deleted",
                                 result.unrecorded))
        result.unrecorded = []
    left = dict(recorded)
    for statuses, action in VERBS[verb]:
        ids = [job_id for rq_id, (job_id, status) in recorded.items() if status in statuses]
        if ids:
            result.steps.append((action, ids))
        left = {rq_id: value for rq_id, value in left.items() if value[1] not in statuses}
    if left:
        result.untouched.append((LEFT_BECAUSE[verb], list(left)))
    return result


def _records(rq_ids: list[str]) -> dict[str, tuple[UUID, str]]:
    ids = {_uuid(rq_id): rq_id for rq_id in rq_ids if _uuid(rq_id) is not None}
    rows = Job.objects.filter(pk__in=list(ids)).values_list("id", "status")
    return {ids[job_id]: (job_id, status) for job_id, status in rows}


def carry_out(request: HttpRequest, work: Plan, *, queue: str) -> list[AuditEvent]:
    events = [staff.staff_jobs_act(action=action, user=request.user, jobs=Job.objects.filter(pk__in=ids),
                                   selection=f"{DASHBOARD}, queue {queue}: {work.verb}")
              for action, ids in work.steps]
    if work.unrecorded:
        events.append(staff.staff_rq_remove(user=request.user, queue=queue, rq_ids=work.unrecorded))
    for event in events:
        report(request, event)
    for why, rq_ids in work.untouched:
        messages.warning(request, f"{len(rq_ids)} job(s) left as they are ({why}).")
    return events


def report(request: HttpRequest, event: AuditEvent) -> None:
    if event.state == AuditState.RUNNING:
        url = reverse("admin:jobs_auditevent_change", args=[event.pk])
        messages.info(request, f"{event.get_action_display()} of {event.requested} jobs runs in the background; "
                               f"its audit event ({url}) shows the progress.")
    else:
        messages.add_message(request, staff.outcome_level(event), event.outcome)


# --- The dashboard's action views (the URL names are django-rq's, so its pages link here) ----------

def _queue_name(queue_index: int) -> str:
    queues = get_queues_list()
    if not 0 <= queue_index < len(queues):
        raise Http404("No such queue.")
    return queues[queue_index]["name"]


def _confirm(request: HttpRequest, queue_index: int, *, verb: str, title: str, work: Plan | None = None,
             note: str = "", next_url: str = "") -> TemplateResponse:
    return TemplateResponse(request, "admin/jobs/rq_confirm.html", {
        **admin.site.each_context(request), "title": title, "verb": verb, "plan": work, "note": note,
        "queue_index": queue_index, "queue": _queue_name(queue_index), "next_url": next_url,
        "records": _record_rows(work) if work else [],
    })


def _record_rows(work: Plan) -> list[dict]:
    labels = {AuditAction.CANCEL: "Cancel: it never runs", AuditAction.DELETE: "Delete its record",
              AuditAction.RETRY: "Retry it", AuditAction.STOP: "Stop it"}
    rows = [{"ids": [str(i) for i in ids], "what": labels[action], "recorded": True} for action, ids in work.steps]
    if work.unrecorded:
        rows.append({"ids": work.unrecorded, "what": AuditAction.RQ_REMOVE.label, "recorded": False})
    rows += [{"ids": ids, "what": f"Nothing: {why}", "recorded": False} for why, ids in work.untouched]
    return rows


def _job_page(queue_index: int, rq_id: str) -> str:
    return reverse("django_rq:job_detail", args=[queue_index, rq_id])


@never_cache
def delete_job(request: HttpRequest, queue_index: int, job_id: str) -> HttpResponse:
    return _one_job(request, queue_index, job_id, "delete")


@never_cache
def requeue_job(request: HttpRequest, queue_index: int, job_id: str) -> HttpResponse:
    return _one_job(request, queue_index, job_id, "requeue")


@never_cache
def stop_job(request: HttpRequest, queue_index: int, job_id: str) -> HttpResponse:
    return _one_job(request, queue_index, job_id, "stop")


def _one_job(request: HttpRequest, queue_index: int, rq_id: str, verb: str) -> HttpResponse:
    queue = _queue_name(queue_index)
    work = plan(verb, [rq_id])
    if request.method != "POST":
        return _confirm(request, queue_index, verb=verb, title=f"{verb.capitalize()} job {rq_id}?", work=work)
    carry_out(request, work, queue=queue)
    if verb == "delete" and not work.untouched:
        return redirect("django_rq:jobs", queue_index)
    return _back_to_job(queue_index, rq_id)


def _back_to_job(queue_index: int, rq_id: str) -> HttpResponse:
    """Where the job is now: its dashboard page while Redis holds it, else its record, else the queue."""
    try:
        if transport.holds(rq_id):
            return redirect(_job_page(queue_index, rq_id))
    except transport.TransportError:
        pass
    record = Job.objects.filter(pk=_uuid(rq_id)).first() if _uuid(rq_id) else None
    if record is not None:
        return redirect("admin:jobs_job_change", record.pk)
    return redirect("django_rq:jobs", queue_index)


def _uuid(rq_id: str) -> UUID | None:
    try:
        return UUID(rq_id)
    except ValueError:
        return None


@never_cache
def enqueue_job(request: HttpRequest, queue_index: int, job_id: str) -> HttpResponse:
    note = ("Not offered here. The engine keeps delayed jobs and retries in the database and hands them to RQ "
            "when due, so its jobs never wait in RQ's deferred or scheduled registries; an RQ job there is not "
            "this system's and can only be deleted. A job waiting in the record is started early from its page "
            "in the Jobs admin.")
    return _confirm(request, queue_index, verb="", title="Enqueue is not offered", note=note,
                    next_url=_job_page(queue_index, job_id))


@never_cache
def requeue_all(request: HttpRequest, queue_index: int) -> HttpResponse:
    queue = transport.get_queue(_queue_name(queue_index))
    work = plan("requeue", queue.failed_job_registry.get_job_ids(cleanup=False))
    if request.method != "POST":
        return _confirm(request, queue_index, verb="requeue", title=f"Requeue every failed job of {queue.name}?",
                        work=work)
    carry_out(request, work, queue=queue.name)
    return redirect("django_rq:failed_jobs", queue_index)


@never_cache
def delete_failed_jobs(request: HttpRequest, queue_index: int) -> HttpResponse:
    queue = transport.get_queue(_queue_name(queue_index))
    work = plan("delete", queue.failed_job_registry.get_job_ids(cleanup=False))
    if request.method != "POST":
        return _confirm(request, queue_index, verb="delete",
                        title=f"Delete every failed job of {queue.name}?", work=work,
                        note="The failed jobs' records are deleted with their attempts, as the Jobs admin's "
                             "\"Delete record\" does.")
    carry_out(request, work, queue=queue.name)
    return redirect("django_rq:failed_jobs", queue_index)


@never_cache
def clear_queue(request: HttpRequest, queue_index: int) -> HttpResponse:
    """Empty the queue: cancel every waiting job of it in the record, and drop what has no record."""
    queue = transport.get_queue(_queue_name(queue_index))
    waiting = Job.objects.filter(queue=queue.name, status__in=WAITING)
    listed = [raw.decode() for raw in queue.connection.lrange(queue.key, 0, -1)]
    unrecorded = [rq_id for rq_id in listed if rq_id not in _records(listed)]
    if request.method != "POST":
        work = Plan(verb="empty", steps=[(AuditAction.CANCEL, list(waiting.values_list("id", flat=True)[:100]))],
                    unrecorded=unrecorded)
        return _confirm(request, queue_index, verb="empty", title=f"Empty queue {queue.name}?", work=work,
                        note=f"Every job of {queue.name} waiting in the record ({waiting.count()}: pending, "
                             "scheduled, queued or retrying) is cancelled and never runs; the first 100 are "
                             "listed.")
    selection = urlencode({"queue": queue.name, "status__in": ",".join(WAITING)})
    report(request, staff.staff_jobs_act_now_or_later(action=AuditAction.CANCEL, user=request.user, jobs=waiting,
                                                      selection=selection, reason=f"{DASHBOARD}: empty queue"))
    if unrecorded:
        report(request, staff.staff_rq_remove(user=request.user, queue=queue.name, rq_ids=unrecorded))
    return redirect("django_rq:jobs", queue_index)


@never_cache
def actions(request: HttpRequest, queue_index: int) -> HttpResponse:
    """The list pages' bulk actions, after django-rq's own confirmation page."""
    queue = _queue_name(queue_index)
    next_url = request.POST.get("next_url") or reverse("django_rq:jobs", args=[queue_index])
    verb = request.POST.get("action", "")
    if request.method == "POST" and verb in VERBS:
        carry_out(request, plan(verb, request.POST.getlist("job_ids")), queue=queue)
    return redirect(next_url if next_url.startswith("/") and not next_url.startswith("//") else "/admin/rq/")


# --- The home page: RQ's numbers beside the record's ---------------------------------------------

@never_cache
def home(request: HttpRequest) -> TemplateResponse:
    in_redis = {entry["name"]: entry for entry in get_statistics(run_maintenance_tasks=True)["queues"]}
    record = {row.name: row for row in selectors.queue_overview(jobs=selectors.job_list_for_user(user=request.user))}
    rows = [{"name": name, "index": index, "redis": in_redis.get(name, {}), "record": record.get(name),
             "later": sum(record[name].counts.get(s, 0) for s in (Status.SCHEDULED, Status.RETRYING))
             if name in record else 0}
            for name, index in get_queues_map().items()]
    return TemplateResponse(request, "admin/jobs/rq_home.html", {
        **admin.site.each_context(request), "title": "RQ dashboard", "rows": rows,
        "schedulers": transport.schedulers_alive(), "scheduler_entries": len(transport.schedule_entries()),
        # django-rq lists a scheduler's entries under a queue's index; ours is built on "default".
        "scheduler_index": get_queues_map().get("default", 0), "failure_ttl_hours": settings.JOBS_RQ_FAILURE_TTL / 3600,
    })


# --- URLs ----------------------------------------------------------------------------------------

OURS = {"home": home, "delete_job": delete_job, "requeue_job": requeue_job, "stop_job": stop_job,
        "enqueue_job": enqueue_job, "requeue_all": requeue_all, "delete_failed_jobs": delete_failed_jobs,
        "clear": clear_queue, "actions": actions}


def urlpatterns() -> list:
    """django-rq's read pages as they are; every page that acts on jobs replaced by ours."""
    api = [pattern for pattern in get_api_urlpatterns() if "token" not in pattern.pattern.regex.groupindex]
    for pattern in api:
        pattern.callback = bearer_or_superuser(pattern.callback)
    pages = get_admin_urlpatterns(view_wrapper=superuser_only)
    for pattern in pages:
        if pattern.name in OURS:
            pattern.callback = superuser_only(OURS[pattern.name])
    return api + pages
