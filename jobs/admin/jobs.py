"""The job list and a job's page: columns, search, actions (now, or in the background past
JOBS_ADMIN_BULK_THRESHOLD), a job's attempts, timeline and buttons, and the live refresh of both."""
from __future__ import annotations

import json
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html

from jobs import dashboard, selectors, staff
from jobs.admin.batches import members_table
from jobs.admin.filters import BoundedCountPaginator, HasErrorFilter, KindFilter, QueueFilter
from jobs.admin.html import LIVE_LIMIT, attempts_html, progress_html, status_badge_html
from jobs.admin.queues import QueuePages
from jobs.admin.starting import StartPages
from jobs.models import TERMINAL, AttemptLog, AuditAction, AuditEvent, AuditState, Job, Source
from jobs.schedules.models import ScheduleRun
from tenants.models import Role
from tenants.scoped_admin import RecordAdmin, ScopedTenantFilter
from tenants.selectors import tenant_list_for_user

NEW_JOBS_LIMIT = 100
LOG_SHOWN = 2000  # log lines on a job's page (JOBS_LOG_LINES per attempt are kept)

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


@admin.register(Job)
class JobAdmin(QueuePages, StartPages, RecordAdmin):
    list_display = ["short_id_link", "kind", "tenant", "status_badge", "progress_bar", "attempts_display", "queue",
                    "created_at", "duration_display"]
    list_display_links = None
    list_truncate = {"kind": 13, "tenant": 9, "progress_bar": 15}
    list_filter = ["status", KindFilter, QueueFilter, ("tenant", ScopedTenantFilter), "created_at", HasErrorFilter, "pinned"]
    search_fields = ["id"]  # shows the search box; `get_search_results` decides what a term means
    search_help_text = ("A job id (full, or the 8-character short id); payload fields as name:value (report_id:7, "
                        "address.city:Paris); or text in the kind, payload or error.")
    list_select_related = ["tenant"]
    # Ids are time-ordered (UUIDv7): newest first by primary key is the cheapest order there is.
    ordering = ["-id"]
    sortable_by = ["kind", "created_at"]
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = ["retry_jobs", "run_now_jobs", "cancel_jobs", "stop_jobs", "delete_jobs", "clean_jobs", "pin_jobs", "unpin_jobs"]
    change_form_template = "admin/jobs/job/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "kind", "tenant", "status_badge", "progress_bar", "attempts_display", "queue",
                           "priority", "source_display", "enqueued_by", "idempotency_key", "pinned"]}),
        ("Timing", {"fields": ["created_at", "enqueued_at", "started_at", "finished_at", "run_at",
                               "duration_display", "timeout"]}),
        ("Data", {"fields": ["payload_pretty", "result_pretty", "last_error", "error_fingerprint"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]] + ["tenant_name"]

    def get_fieldsets(self, request, obj=None):
        # Tenant staff see only their tenants' jobs: the model's note about system jobs is not for them.
        if request.user.is_superuser:
            return self.fieldsets
        return [(title, {**options, "fields": ["tenant_name" if name == "tenant" else name for name in options["fields"]]})
                for title, options in self.fieldsets]

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
        run = ScheduleRun.objects.filter(job_id=job.pk).select_related("schedule").first()
        if run is None:
            return job.get_source_display()
        return format_html('Schedule <a href="{}">{}</a> ({}, for {})',
                           reverse("admin:schedules_schedule_change", args=[run.schedule_id]), run.schedule.name,
                           run.get_outcome_display().lower(), f"{run.fire_at.astimezone(run.schedule.tz):%Y-%m-%d %H:%M %Z}")

    @admin.display(description="tenant")
    def tenant_name(self, job: Job) -> str:
        return str(job.tenant) if job.tenant_id else "-"

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
        return selectors.job_search(queryset, search_term), False

    # --- actions ---------------------------------------------------------------------------------------

    @admin.action(description="Retry selected jobs (failed or cancelled)", permissions=["operate"])
    def retry_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.RETRY)

    @admin.action(description="Run selected jobs now (scheduled or retrying)", permissions=["operate"])
    def run_now_jobs(self, request, queryset):
        return self._act(request, queryset, AuditAction.RUN_NOW)

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
            path("new/", self.admin_site.admin_view(self.new_jobs_view), name="jobs_job_new"),
            path("queues/", self.admin_site.admin_view(self.queues_view), name="jobs_job_queues"),
            path("queues/<str:name>/<str:operation>/", self.admin_site.admin_view(self.queue_operation_view),
                 name="jobs_job_queue_operation"),
            path("triage/", self.admin_site.admin_view(self.triage_view), name="jobs_job_triage"),
            path("workers/", self.admin_site.admin_view(self.workers_view), name="jobs_job_workers"),
            path("start/", self.admin_site.admin_view(self.start_view), name="jobs_job_start"),
            path("<path:object_id>/clone/", self.admin_site.admin_view(self.clone_view), name="jobs_job_clone"),
            path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.job_action_view),
                 name="jobs_job_act"),
        ]
        return own + super().get_urls()

    def changeview_actions(self, request, job: Job) -> list[tuple[str, str]]:
        """(action, label) a user may take on this job now, for the detail page's buttons."""
        available = []
        for name, spec in staff.JOB_ACTIONS.items():
            pointless = {AuditAction.CLEAN, AuditAction.UNPIN if not job.pinned else AuditAction.PIN}
            if job.run_at is None:  # a chain's step waiting for the one before: no time to bring forward
                pointless.add(AuditAction.RUN_NOW)
            if name not in pointless and job.status in spec.applies_to and self.has_role(request, spec.role, job):
                available.append((name, spec.label))
        return available

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is None:
            return super().change_view(request, object_id, form_url, extra_context)
        attempts = list(job.attempt_set.select_related("triggered_by").order_by("number"))
        log_lines = list(AttemptLog.objects.filter(attempt__job=job).select_related("attempt")
                         .only("at", "level", "message", "attempt__number").order_by("attempt__number", "id")[:LOG_SHOWN])
        context = {
            "log_lines": log_lines,
            "log_shown_limit": LOG_SHOWN if len(log_lines) == LOG_SHOWN else None,
            "log_live": job.status not in TERMINAL,
            "job": job,
            "attempts": attempts,
            "timeline": selectors.job_timeline(job=job),
            "job_actions": self.changeview_actions(request, job),
            "rq_url": dashboard.job_url(job) if request.user.is_superuser else None,
            "can_clone": self.has_role(request, Role.OPERATOR, job),
            "batch_section": self._batch_section(job),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    @staticmethod
    def _batch_section(job: Job) -> dict | None:
        if job.batch_id is None:
            return None
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

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            # The newest job the list shows: the "N new jobs" bar counts the matching jobs made since.
            context["newest_job_id"] = max((str(job.pk) for job in context["cl"].result_list), default="")
            context["can_start"] = bool(self.startable_kinds(request))
        return response

    def new_jobs_view(self, request):
        """How many jobs the list's filters and search would show that are newer than `_since` (at most
        NEW_JOBS_LIMIT), for the list's "N new jobs, show" bar."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.copy()
        since = query.pop("_since", [""])[0]
        request.GET = query
        try:
            rows = self.get_changelist_instance(request).get_queryset(request)
        except (IncorrectLookupParameters, ValidationError, ValueError):
            return JsonResponse({"new": 0})
        if since:
            try:
                rows = rows.filter(pk__gt=UUID(since))
            except ValueError:
                return JsonResponse({"new": 0})
        count = rows.order_by()[:NEW_JOBS_LIMIT].count()
        return JsonResponse({"new": count, "more": count >= NEW_JOBS_LIMIT})

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
            "id", "kind", "status", "progress", "progress_message", "attempts", "max_attempts", "tenant_id", "run_at",
            "started_at")
        payload = {
            str(job.pk): {"status": job.status, "status_html": status_badge_html(job),
                          "progress_html": progress_html(job), "attempts_html": attempts_html(job),
                          "attempts": job.attempts,
                          "finished": job.status in TERMINAL}
            for job in jobs
        }
        return JsonResponse({"jobs": payload})
