"""Staff pages for jobs: the job list and detail, actions, live refresh, queues, failure triage, audit.

Everything a user sees goes through `TenantScopedAdmin.get_queryset` (or the selectors, scoped the same
way); every write goes through `jobs.staff`, which checks the user's role per tenant and records an
AuditEvent. Lists never count the whole table: counts stop at JOBS_ADMIN_COUNT_LIMIT.
"""
from __future__ import annotations

import json
import re
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from jobs import dashboard, selectors, staff
from jobs.models import (
    SHORT_ID_LENGTH, TERMINAL, UNFINISHED, WAITING, AuditAction, AuditEvent, AuditState, Job, Source, Status,
    short_id_expression,
)
from jobs.registry import kind_names
from tenants.admin import RecordAdmin, ScopedTenantFilter, TenantScopedAdmin
from tenants.models import Role
from tenants.selectors import tenant_list_for_user

STATUS_COLOURS = {
    Status.PENDING: "#6c757d", Status.SCHEDULED: "#6f42c1", Status.QUEUED: "#0d6efd",
    Status.RUNNING: "#0a8aa8", Status.RETRYING: "#c35a00", Status.SUCCEEDED: "#198754",
    Status.FAILED: "#dc3545", Status.CANCELLED: "#6c757d",
}
LIVE_LIMIT = 200


def status_badge_html(job: Job) -> str:
    return format_html(
        '<span class="job-status" data-live-job="{}" data-status="{}" '
        'style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
        job.pk, job.status, STATUS_COLOURS.get(job.status, "#333"), job.get_status_display(),
    )


def progress_html(job: Job) -> str:
    return format_html('<span class="job-progress" data-live-job="{}"><progress max="100" value="{}" title="{}%">'
                       '</progress> {}</span>', job.pk, job.progress, job.progress, job.progress_message)


def attempts_html(job: Job) -> str:
    return format_html('<span class="job-attempts" data-live-job="{}">{}/{}</span>', job.pk, job.attempts,
                       job.max_attempts)


class BoundedCountPaginator(Paginator):
    """Counts at most JOBS_ADMIN_COUNT_LIMIT + 1 rows: a bounded index scan instead of COUNT(*) of the table."""

    limit = settings.JOBS_ADMIN_COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        # Any limit + 1 matching rows will do, so the list's ORDER BY goes: with it the database has to
        # find every match and sort it (or walk the primary key past all the misses) before it stops.
        rows = self.object_list
        if hasattr(rows, "order_by"):
            rows = rows.order_by()
        return rows[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.limit


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(name, name) for name in kind_names()]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.RQ_QUEUES]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Has an error"), ("no", "No error")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(last_error="")
        if self.value() == "no":
            return queryset.filter(last_error="")
        return queryset


class ActionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Optional; stored in the audit record.")
    days = forms.IntegerField(required=False, min_value=0, max_value=3650,
                              help_text="Delete finished jobs that finished more than this many days ago.")

    def __init__(self, *args, action: str, **kwargs):
        super().__init__(*args, **kwargs)
        if action == AuditAction.CLEAN:
            self.fields["days"].required = True
        else:
            del self.fields["days"]


def job_changelist_queryset(*, user, selection: str) -> QuerySet[Job]:
    """The jobs the changelist shows `user` for `selection` (its query string): filters, search, scope.

    A large action replays its selection with this in a worker, so it acts on exactly what the staff
    member confirmed, under their current permissions.
    """
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = reverse("admin:jobs_job_changelist")
    request.GET = QueryDict(selection)
    request.user = user
    model_admin = admin.site._registry[Job]
    changelist = model_admin.get_changelist_instance(request)
    return changelist.get_queryset(request)


@admin.register(Job)
class JobAdmin(RecordAdmin):
    list_display = ["short_id_link", "kind", "tenant", "status_badge", "progress_bar", "attempts_display", "queue",
                    "created_at", "duration_display"]
    list_display_links = None
    list_filter = ["status", KindFilter, QueueFilter, ("tenant", ScopedTenantFilter), "created_at", HasErrorFilter, "pinned"]
    search_fields = ["id"]  # shows the search box; `get_search_results` decides what a term means
    search_help_text = "A job id (full, or the 8-character short id), or text in the kind, payload or error."
    list_select_related = ["tenant"]
    # Ids are time-ordered (UUIDv7): newest first by primary key is the cheapest order there is.
    ordering = ["-id"]
    sortable_by = ["kind", "created_at"]
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = ["retry_jobs", "cancel_jobs", "stop_jobs", "delete_jobs", "clean_jobs", "pin_jobs", "unpin_jobs"]
    change_form_template = "admin/jobs/job/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "kind", "tenant", "status_badge", "progress_bar", "attempts_display", "queue",
                           "source_display", "enqueued_by", "idempotency_key", "pinned"]}),
        ("Timing", {"fields": ["created_at", "enqueued_at", "started_at", "finished_at", "run_at",
                               "duration_display", "timeout"]}),
        ("Data", {"fields": ["payload_pretty", "result_pretty", "last_error", "error_fingerprint"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    # Jobs change only through the engine's services (RecordAdmin has no add, change or delete view);
    # deleting is the audited "delete record" action.
    def has_manage_permission(self, request) -> bool:
        return self.has_role(request, Role.ADMIN)

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # Links from the queues and triage pages filter on these.
        return lookup in ("error_fingerprint", "status__in") or super().lookup_allowed(lookup, value, request)

    # --- columns -----------------------------------------------------------------------------------

    @admin.display(description="source")
    def source_display(self, job: Job) -> str:
        if job.source != Source.SCHEDULE:
            return job.get_source_display()
        from jobs.schedules.models import ScheduleRun

        run = ScheduleRun.objects.filter(job_id=job.pk).select_related("schedule").first()
        if run is None:
            return job.get_source_display()
        return format_html('Schedule <a href="{}">{}</a> ({}, for {})',
                           reverse("admin:schedules_schedule_change", args=[run.schedule_id]), run.schedule.name,
                           run.get_outcome_display().lower(), f"{run.fire_at.astimezone(run.schedule.tz):%Y-%m-%d %H:%M %Z}")

    @admin.display(description="id")
    def short_id_link(self, job: Job) -> str:
        url = reverse("admin:jobs_job_change", args=[job.pk])
        return format_html('<a href="{}" title="{}"><code>{}</code></a>', url, job.pk, job.short_id)

    @admin.display(description="status")
    def status_badge(self, job: Job) -> str:
        return status_badge_html(job)

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> str:
        return progress_html(job)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return attempts_html(job)

    @admin.display(description="duration")
    def duration_display(self, job: Job) -> str:
        duration = job.duration
        if duration is None:
            return "-"
        seconds = duration.total_seconds()
        return f"{seconds:.2f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"

    @admin.display(description="payload")
    def payload_pretty(self, job: Job) -> str:
        return format_html("<pre>{}</pre>", json.dumps(job.payload, indent=2, sort_keys=True))

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> str:
        return format_html("<pre>{}</pre>", json.dumps(job.result, indent=2, sort_keys=True)) if job.result else "-"

    # --- search --------------------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=UUID(term)), False
        except ValueError:
            pass
        if re.fullmatch(rf"[0-9a-fA-F]{{{SHORT_ID_LENGTH}}}", term):
            # Served by the job_short_id expression index.
            by_short_id = queryset.annotate(short_id_text=short_id_expression()).filter(short_id_text=term.lower())
            if by_short_id.exists():
                return by_short_id, False
        text = Q(kind__icontains=term) | Q(last_error__icontains=term) | Q(payload_text__icontains=term)
        return queryset.annotate(payload_text=Cast("payload", TextField())).filter(text), False

    # --- actions ---------------------------------------------------------------------------------------

    @admin.action(description="Retry selected jobs (failed or cancelled)", permissions=["operate"])
    def retry_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.RETRY)

    @admin.action(description="Cancel selected jobs (waiting ones)", permissions=["operate"])
    def cancel_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.CANCEL)

    @admin.action(description="Stop selected jobs (running ones)", permissions=["operate"])
    def stop_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.STOP)

    @admin.action(description="Delete records of selected jobs (finished ones)", permissions=["manage"])
    def delete_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.DELETE)

    @admin.action(description="Clean: delete selected finished jobs older than N days", permissions=["manage"])
    def clean_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.CLEAN)

    @admin.action(description="Pin selected jobs (keep past retention)", permissions=["manage"])
    def pin_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.PIN)

    @admin.action(description="Unpin selected jobs", permissions=["manage"])
    def unpin_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.UNPIN)

    def _act(self, request, queryset, action: str):
        threshold = settings.JOBS_ADMIN_BULK_THRESHOLD
        large = request.POST.get("select_across") == "1" and queryset[: threshold + 1].count() > threshold
        form = ActionForm(request.POST if "confirm" in request.POST else None, action=action)
        if large or action in (AuditAction.DELETE, AuditAction.CLEAN) or form.is_bound:
            if not form.is_valid():
                return self._confirmation(request, queryset, action, form, large=large)
        reason = form.cleaned_data.get("reason", "") if form.is_bound else ""
        days = form.cleaned_data.get("days") if form.is_bound else None
        if large:
            event = staff.staff_jobs_act_later(
                action=action, user=request.user, selection=self._selection(request), requested=queryset.count(),
                reason=reason, days=days, tenant=self._single_tenant(request),
            )
        else:
            event = staff.staff_jobs_act(action=action, user=request.user, jobs=queryset, reason=reason, days=days)
        self._report(request, event)
        return None

    def _report(self, request, event: AuditEvent) -> None:
        if event.state == AuditState.RUNNING:
            url = reverse("admin:jobs_auditevent_change", args=[event.pk])
            self.message_user(request, format_html(
                "{} of {} jobs runs in the background: <a href=\"{}\">follow its progress</a>.",
                event.get_action_display(), event.requested, url))
        else:
            self.message_user(request, event.outcome, staff.outcome_level(event))

    def _confirmation(self, request, queryset, action: str, form: ActionForm, *, large: bool):
        spec = staff.JOB_ACTIONS[action]
        context = {
            "title": f"{spec.label}: confirm",
            "action": action,
            "label": spec.label,
            "applies_to": spec.applies_to,
            "count": queryset.count(),
            "large": large,
            "form": form,
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "selection": self._selection(request),
            "threshold": settings.JOBS_ADMIN_BULK_THRESHOLD,
        }
        return self.page(request, "admin/jobs/job/action_confirmation.html", **context)

    @staticmethod
    def _selection(request) -> str:
        params = request.GET.copy()
        for key in ("p", "o", "_changelist_filters"):
            params.pop(key, None)
        return params.urlencode()

    @staticmethod
    def _single_tenant(request):
        tenants = list(tenant_list_for_user(user=request.user)[:2])
        return tenants[0] if len(tenants) == 1 and not request.user.is_superuser else None

    # --- pages ---------------------------------------------------------------------------------------

    def get_urls(self):
        own = [
            path("live/", self.admin_site.admin_view(self.live_view), name="jobs_job_live"),
            path("queues/", self.admin_site.admin_view(self.queues_view), name="jobs_job_queues"),
            path("queues/<str:name>/<str:operation>/", self.admin_site.admin_view(self.queue_operation_view),
                 name="jobs_job_queue_operation"),
            path("triage/", self.admin_site.admin_view(self.triage_view), name="jobs_job_triage"),
            path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.job_action_view),
                 name="jobs_job_act"),
        ]
        return own + super().get_urls()

    def changeview_actions(self, request, job: Job) -> list[tuple[str, str]]:
        """(action, label) a user may take on this job now, for the detail page's buttons."""
        available = []
        for name, spec in staff.JOB_ACTIONS.items():
            pointless = {AuditAction.CLEAN, AuditAction.UNPIN if not job.pinned else AuditAction.PIN}
            if name not in pointless and job.status in spec.applies_to and self.has_role(request, spec.role, job):
                available.append((name, spec.label))
        return available

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is None:
            return super().change_view(request, object_id, form_url, extra_context)
        attempts = list(job.attempt_set.select_related("triggered_by").order_by("number"))
        context = {
            "job": job,
            "attempts": attempts,
            "timeline": selectors.job_timeline(job=job),
            "job_actions": self.changeview_actions(request, job),
            "rq_url": dashboard.job_url(job) if request.user.is_superuser else None,
            "batch_section": self._batch_section(job),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    @staticmethod
    def _batch_section(job: Job) -> dict | None:
        if job.batch_id is None:
            return None
        from jobs.batch_admin import members_table

        batch = job.batch
        where = f"step {job.batch_position} of {batch.total}" if batch.sequential else f"one of {batch.total}"
        return {"batch": batch, "title": f"{'Chain' if batch.sequential else 'Batch'} {batch.name} ({where})",
                "members": members_table(batch, current=job)}

    def job_action_view(self, request, object_id, action):
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("No such job.")
        spec = staff.JOB_ACTIONS.get(action)
        if spec is None or action == AuditAction.CLEAN:
            raise Http404("No such action.")
        if not self.has_role(request, spec.role, job):
            raise PermissionDenied(f"Your role in {job.tenant or 'the system tenant'} does not allow {spec.label}.")
        form = ActionForm(request.POST if request.method == "POST" else None, action=action)
        if request.method != "POST" or not form.is_valid():
            return self.page(request, "admin/jobs/job/job_action.html", job=job, title=f"{spec.label} job {job.short_id}",
                             label=spec.label, form=form)
        event = staff.staff_jobs_act(action=action, user=request.user, jobs=Job.objects.filter(pk=job.pk),
                                     reason=form.cleaned_data["reason"])
        self._report(request, event)
        if action == AuditAction.DELETE and event.done:
            return HttpResponseRedirect(reverse("admin:jobs_job_changelist"))
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def live_view(self, request):
        """Status and progress of the given jobs, rendered as the list renders them, for live refresh."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = []
        for raw in request.GET.getlist("id")[:LIVE_LIMIT]:
            try:
                ids.append(UUID(raw))
            except ValueError:
                continue
        jobs = self.get_queryset(request).filter(pk__in=ids).only(
            "id", "status", "progress", "progress_message", "attempts", "max_attempts", "tenant_id")
        payload = {
            str(job.pk): {"status": job.status, "status_html": status_badge_html(job),
                          "progress_html": progress_html(job), "attempts_html": attempts_html(job),
                          "finished": job.status in TERMINAL}
            for job in jobs
        }
        return JsonResponse({"jobs": payload})

    def queues_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = selectors.queue_overview(user=request.user)
        buckets = selectors.throughput_by_hour(user=request.user)
        context = {
            "title": "Queues",
            "rows": rows,
            "chart": throughput_svg(buckets),
            "buckets": buckets,
            "can_pause": request.user.is_superuser,
            "can_cancel": self.has_operate_permission(request),
            "waiting_statuses": ",".join(WAITING),
            "unfinished": UNFINISHED,
        }
        return self.page(request, "admin/jobs/queues.html", **context)

    def queue_operation_view(self, request, name, operation):
        if request.method != "POST":
            return HttpResponse(status=405)
        if name not in settings.RQ_QUEUES:
            raise Http404("No such queue.")
        reason = request.POST.get("reason", "")[:2000]
        if operation in ("pause", "resume"):
            # A queue is shared by every tenant: pausing it is an operator-of-the-platform decision.
            if not request.user.is_superuser:
                raise PermissionDenied("Only superusers pause and resume queues; they are shared by all tenants.")
            change = staff.staff_queue_pause if operation == "pause" else staff.staff_queue_resume
            event = change(name=name, user=request.user, reason=reason)
            self.message_user(request, f"Queue {name}: {event.get_action_display().lower()}. {event.outcome}")
        elif operation == "cancel-waiting":
            if not self.has_operate_permission(request):
                raise PermissionDenied("Cancelling needs the operator role.")
            selection = urlencode({"queue": name, "status__in": ",".join(WAITING)})
            self._act_on_selection(request, AuditAction.CANCEL, selection, reason)
        else:
            raise Http404("No such operation.")
        return HttpResponseRedirect(reverse("admin:jobs_job_queues"))

    def triage_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            fingerprint = request.POST.get("fingerprint", "")
            operation = request.POST.get("operation")
            if operation not in ("retry", "cancel") or not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
                raise Http404("No such operation.")
            if not self.has_operate_permission(request):
                raise PermissionDenied("Retrying and cancelling need the operator role.")
            status = Status.FAILED if operation == "retry" else Status.RETRYING
            selection = urlencode({"error_fingerprint": fingerprint, "status__exact": status})
            self._act_on_selection(request, operation, selection, request.POST.get("reason", "")[:2000])
            return HttpResponseRedirect(reverse("admin:jobs_job_triage"))
        return self.page(request, "admin/jobs/triage.html", title="Failure triage",
                         groups=selectors.failure_groups(user=request.user),
                         can_operate=self.has_operate_permission(request))

    def _act_on_selection(self, request, action: str, selection: str, reason: str) -> None:
        """An action on a filter, from the queues or triage page: now if small, in the background if not."""
        event = staff.staff_jobs_act_now_or_later(
            action=action, user=request.user, jobs=job_changelist_queryset(user=request.user, selection=selection),
            selection=selection, reason=reason, tenant=self._single_tenant(request))
        self._report(request, event)


def throughput_svg(buckets: list[selectors.HourBucket], width: int = 720, height: int = 140) -> str:
    """Succeeded (green) and failed (red) jobs per hour as stacked bars: inline SVG, no script, no CDN."""
    peak = max([b.succeeded + b.failed for b in buckets] + [1])
    slot = width / max(len(buckets), 1)
    bar = max(slot - 4, 2)
    chart_height = height - 20

    def bars():
        for index, bucket in enumerate(buckets):
            x = index * slot + 2
            ok = chart_height * bucket.succeeded / peak
            bad = chart_height * bucket.failed / peak
            label = f"{bucket.hour:%H}:00 UTC: {bucket.succeeded} succeeded, {bucket.failed} failed"
            numbers = (x, chart_height - ok - bad, bar, ok, x, chart_height - bad, bar, bad, x + bar / 2)
            a, b, c, d, e, f, g, h, i = (f"{n:.1f}" for n in numbers)
            yield a, b, c, d, label, e, f, g, h, label, i, height - 5, f"{bucket.hour:%H}" if index % 3 == 0 else ""

    rects = format_html_join(
        "\n",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#198754"><title>{}</title></rect>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#dc3545"><title>{}</title></rect>'
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#666">{}</text>',
        bars(),
    )
    return format_html(
        '<svg role="img" aria-label="Jobs finished per hour, last 24 hours" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">'
        '<text x="0" y="10" font-size="10" fill="#666">peak {} per hour</text>{}</svg>',
        width, height, width, height, peak, rects,
    )


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """The audit trail: read-only for everyone, scoped to the user's tenants and their own actions."""

    list_display = ["created_at", "actor_name", "action", "tenant", "target", "requested", "done", "skipped",
                    "refused", "state", "progress_of_background_job"]
    list_filter = ["action", "state", ("tenant", ScopedTenantFilter), "created_at"]
    search_fields = ["actor_name", "reason", "outcome", "target"]
    list_select_related = ["tenant", "background_job"]
    readonly_fields = ["created_at", "actor_name", "action", "tenant", "target", "selection_link", "reason",
                       "requested", "done", "skipped", "refused", "state", "progress_of_background_job", "outcome",
                       "finished_at", "jobs_touched"]
    fields = readonly_fields
    paginator = BoundedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.audit_list_for_user(user=request.user).select_related("tenant", "background_job")

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_role(request, Role.VIEWER) if obj is None else (
            request.user.is_staff and self.get_queryset(request).filter(pk=obj.pk).exists())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="background job")
    def progress_of_background_job(self, event: AuditEvent) -> str:
        job = event.background_job
        if job is None:
            return "-"
        return format_html("{} {}", status_badge_html(job), progress_html(job))

    @admin.display(description="selection")
    def selection_link(self, event: AuditEvent) -> str:
        if not event.selection:
            return "-"
        url = reverse("admin:jobs_job_changelist") + "?" + event.selection
        return format_html('<a href="{}">{}</a>', url, event.selection)

    @admin.display(description="jobs touched (first 100)")
    def jobs_touched(self, event: AuditEvent) -> str:
        ids = list(event.touched.values_list("job_id", flat=True)[:100])
        if not ids:
            return "-"
        return format_html_join(" ", '<a href="{}"><code>{}</code></a>',
                                ((reverse("admin:jobs_job_change", args=[job_id]), str(job_id)[-SHORT_ID_LENGTH:])
                                 for job_id in ids))



from jobs import batch_admin  # noqa: E402,F401  (registers the batches admin, which builds on this module)
