"""Staff pages for cron schedules: tenant admins manage their tenant's, superusers also system-wide ones."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from jobs.admin.html import status_badge_html
from jobs.admin.starting import payload_guide
from jobs.models import DEFAULT_PRIORITY, Job
from jobs.registry import get_kind, kind_names, public_kind_names
from jobs.schedules import cron
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.schedules.services import (schedule_check, schedule_delete, schedule_run_now, schedule_save,
                                     schedules_set_enabled)
from tenants.models import Role
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin
from tenants.selectors import tenant_list_with_role

RECENT_RUNS = 10
UPCOMING = 5


class TimezoneInput(forms.TextInput):
    """A text field with every IANA name as a suggestion: typing 'Ber' offers Europe/Berlin."""

    def render(self, name, value, attrs=None, renderer=None):
        attrs = {**(attrs or {}), "list": f"{name}-choices", "autocomplete": "off"}
        options = format_html_join("", '<option value="{}">', ((zone,) for zone in cron.timezone_names()))
        return format_html('{}<datalist id="{}-choices">{}</datalist>', super().render(name, value, attrs, renderer),
                           name, options)


class ScheduleForm(forms.ModelForm):
    kind = forms.ChoiceField(help_text="The job kind each firing enqueues.")
    payload = forms.JSONField(required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
                              help_text="A JSON object, checked against the kind's parameters when you save.")
    user = None  # set by the admin: what the form may offer depends on who fills it in

    class Meta:
        model = Schedule
        fields = ["tenant", "name", "kind", "payload", "priority", "cron", "timezone", "misfire_policy", "start_at",
                  "end_at", "enabled"]
        widgets = {"timezone": TimezoneInput(attrs={"size": 30})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = kind_names() if self.user is not None and self.user.is_superuser else public_kind_names()
        if self.instance.pk and self.instance.kind not in names:
            names = [*names, self.instance.kind]
        self.fields["kind"].choices = [(name, name) for name in names]
        if "priority" in self.fields:  # left out, the default
            self.fields["priority"].required = False
        if "tenant" in self.fields and not (self.user is not None and self.user.is_superuser):
            self.fields["tenant"].help_text = ""  # system-wide schedules are not theirs to make
        # The payload field says what the chosen kind takes (schedule_form.js keeps it in step with the kind).
        guides = {name: payload_guide(get_kind(name)) for name in names}
        self.fields["payload"].widget.attrs["data-kind-guides"] = json.dumps(guides)
        if self.instance.pk is None:
            chosen = self.initial.get("kind") or (names[0] if names else None)
            self.initial.setdefault("payload", guides[chosen]["defaults"] if chosen else {})

    def clean_priority(self) -> int:
        value = self.cleaned_data.get("priority")
        return DEFAULT_PRIORITY if value is None else value

    def clean_cron(self) -> str:
        return cron.cron_check(self.cleaned_data["cron"])

    def clean_timezone(self) -> str:
        return cron.timezone_check(self.cleaned_data["timezone"]).key

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("tenant") is None and "tenant" not in self.errors and not (self.user and self.user.is_superuser):
            self.add_error("tenant", "Choose a tenant: system-wide schedules are for superusers.")
        kind = cleaned.get("kind")
        if kind and "payload" not in self.errors:
            try:
                cleaned["payload"] = schedule_check(kind=kind, payload=cleaned.get("payload"),
                                                    cron_text=cleaned.get("cron") or "",
                                                    start_at=cleaned.get("start_at"), end_at=cleaned.get("end_at"))
            except ValidationError as exc:
                for field, problems in exc.message_dict.items():
                    if field.startswith("payload."):  # one payload box: the message names the part
                        self.add_error("payload", f"{field}: {' '.join(problems)}")
                    else:
                        self.add_error(field, problems)
        return cleaned


def _in_zone(moment, schedule: Schedule) -> str:
    return f"{moment.astimezone(schedule.tz):%Y-%m-%d %H:%M %Z}" if moment else "-"


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdmin):
    form = ScheduleForm
    change_role = Role.ADMIN
    list_display = ["name", "tenant", "kind", "when", "state", "next_run", "last_run"]
    list_truncate = {"name": 16, "tenant": 8, "kind": 11, "when": 16, "last_run": 14}
    list_filter = ["enabled", "misfire_policy", ("tenant", ScopedTenantFilter)]
    search_fields = ["name", "kind"]
    list_select_related = ["tenant"]
    actions = ["run_now", "pause", "resume"]
    readonly_fields = ["in_words", "upcoming", "recent_runs", "created_by", "created_at"]
    change_form_template = "admin/schedules/schedule/change_form.html"

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["tenant", "name", "kind", "payload", "priority"]})
        timing = ["cron", "timezone", "misfire_policy", "start_at", "end_at", "enabled"]
        if obj is None:
            return [main, ("When", {"fields": timing})]
        return [main, ("When", {"fields": ["in_words", *timing]}),
                ("Runs", {"fields": ["upcoming", "recent_runs", "created_by", "created_at"]})]

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "tenant" not in initial and not request.user.is_superuser:
            tenants = list(tenant_list_with_role(user=request.user, role=self.change_role)[:2])
            if len(tenants) == 1:  # the one tenant they may add schedules to
                initial["tenant"] = tenants[0].pk
        return initial

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # a class made for this request by modelform_factory
        return form

    def get_queryset(self, request):
        latest = ScheduleRun.objects.filter(schedule=OuterRef("pk")).order_by("-fire_at")
        return super().get_queryset(request).annotate(
            last_fire_at=Subquery(latest.values("fire_at")[:1]),
            last_outcome=Subquery(latest.values("outcome")[:1]),
            last_job_status=Subquery(latest.values("job__status")[:1]),
        )

    def has_operate_permission(self, request) -> bool:
        return self.has_role(request, Role.ADMIN)

    # --- columns and read-only fields ---

    @admin.display(description="when")
    def when(self, schedule: Schedule) -> str:
        return format_html("{} <small>({}, {})</small>", schedule.description, schedule.cron, schedule.timezone)

    @admin.display(description="in words")
    def in_words(self, schedule: Schedule) -> str:
        return self.when(schedule)

    @admin.display(description="state")
    def state(self, schedule: Schedule) -> str:
        if not schedule.enabled:
            return "Paused"
        return "Active" if schedule.next_fire_at else "Ended"

    @admin.display(description="next run", ordering="next_fire_at")
    def next_run(self, schedule: Schedule) -> str:
        return _in_zone(schedule.next_fire_at, schedule) if schedule.enabled else "-"

    @admin.display(description="last run")
    def last_run(self, schedule: Schedule) -> str:
        if schedule.last_fire_at is None:
            return "never"
        if schedule.last_job_status:
            job = Job(status=schedule.last_job_status)
            return format_html("{} {}", _in_zone(schedule.last_fire_at, schedule), status_badge_html(job))
        return format_html("{} <em>{}</em>", _in_zone(schedule.last_fire_at, schedule),
                           dict(ScheduleRun._meta.get_field("outcome").choices)[schedule.last_outcome])

    @admin.display(description=f"next {UPCOMING} runs")
    def upcoming(self, schedule: Schedule) -> str:
        if not schedule.enabled:
            return "None while paused."
        times = schedule.fire_times_after(schedule.fired_through, UPCOMING)
        if not times:
            return "None: the schedule has ended."
        return format_html("<ol class='upcoming'>{}</ol>",
                           format_html_join("", "<li>{}</li>", ((_in_zone(t, schedule),) for t in times)))

    @admin.display(description="recent runs")
    def recent_runs(self, schedule: Schedule) -> str:
        runs = list(schedule.runs.order_by("-fire_at")[:RECENT_RUNS])
        if not runs:
            return "None yet."
        jobs = Job.objects.in_bulk([run.job_id for run in runs if run.job_id])
        rows = []
        for run in runs:
            job = jobs.get(run.job_id)
            if job is not None:
                link = format_html('<a href="{}">{}</a> {}', reverse("admin:jobs_job_change", args=[job.pk]),
                                   job.short_id, status_badge_html(job))
            else:
                link = "job removed by retention" if run.job_id else "-"
            rows.append((_in_zone(run.fire_at, schedule), run.get_outcome_display(), link,
                         f" by {run.triggered_by}" if run.triggered_by else "", run.note))
        return format_html(
            "<table class='schedule-runs'><thead><tr><th>for</th><th>outcome</th><th>job</th><th>note</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr class='schedule-run'><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>", rows))

    # --- writes go through the services (audited) ---

    def save_model(self, request, obj, form, change) -> None:
        schedule_save(schedule=obj, user=request.user, changed=form.changed_data if change else ())

    def delete_model(self, request, obj) -> None:
        schedule_delete(schedule=obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for schedule in queryset:
            schedule_delete(schedule=schedule, user=request.user)

    # --- actions: list actions and the change page's buttons ---

    def _permitted(self, request, queryset) -> list[Schedule]:
        allowed = [schedule for schedule in queryset.select_related("tenant")
                   if self.has_role(request, Role.ADMIN, schedule)]
        if len(allowed) < len(queryset):
            self.message_user(request, f"{len(queryset) - len(allowed)} schedule(s) skipped: your role does not allow it.",
                              messages.WARNING)
        return allowed

    @admin.action(description="Run selected schedules now", permissions=["operate"])
    def run_now(self, request, queryset) -> None:
        for schedule in self._permitted(request, queryset):
            run = schedule_run_now(schedule=schedule, user=request.user)
            if run.job_id:
                self.message_user(request, f"{schedule}: job {run.job.short_id} enqueued.", messages.SUCCESS)
            else:
                self.message_user(request, f"{schedule}: {run.note}", messages.ERROR)

    @admin.action(description="Pause selected schedules", permissions=["operate"])
    def pause(self, request, queryset) -> None:
        changed = schedules_set_enabled(schedules=self._permitted(request, queryset), enabled=False, user=request.user)
        self.message_user(request, f"{len(changed)} schedule(s) paused.", messages.SUCCESS)

    @admin.action(description="Resume selected schedules", permissions=["operate"])
    def resume(self, request, queryset) -> None:
        changed = schedules_set_enabled(schedules=self._permitted(request, queryset), enabled=True, user=request.user)
        self.message_user(request, f"{len(changed)} schedule(s) resumed; missed runs are not caught up.",
                          messages.SUCCESS)

    def get_urls(self):
        return [path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                     name="schedules_schedule_act")] + super().get_urls()

    def act_view(self, request, object_id, action):
        schedule = self.get_object(request, object_id)
        if schedule is None:
            raise Http404("No such schedule.")
        operation = {"run_now": self.run_now, "pause": self.pause, "resume": self.resume}.get(action)
        if operation is None:
            raise Http404("No such action.")
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:schedules_schedule_change", args=[schedule.pk]))
        if not self.has_role(request, Role.ADMIN, schedule):
            raise PermissionDenied(f"Your role in {schedule.tenant or 'the system'} does not allow this.")
        operation(request, Schedule.objects.filter(pk=schedule.pk))
        return HttpResponseRedirect(reverse("admin:schedules_schedule_change", args=[schedule.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        schedule = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if schedule is not None and self.has_role(request, Role.ADMIN, schedule):
            context["schedule_actions"] = [("run_now", "Run now"),
                                           ("pause", "Pause") if schedule.enabled else ("resume", "Resume")]
        return super().change_view(request, object_id, form_url, context)
