from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from jobs.models import Attempt, Job, Status
from tenants.admin import TenantScopedAdmin

STATUS_COLOURS = {
    Status.PENDING: "#6c757d", Status.SCHEDULED: "#6f42c1", Status.QUEUED: "#0d6efd",
    Status.RUNNING: "#0dcaf0", Status.RETRYING: "#fd7e14", Status.SUCCEEDED: "#198754",
    Status.FAILED: "#dc3545", Status.CANCELLED: "#adb5bd",
}


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["number", "trigger", "triggered_by", "worker_name", "hostname", "pid", "started_at", "ended_at",
              "outcome", "error_type", "error_message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(TenantScopedAdmin):
    list_display = ["short_id", "kind", "tenant", "status_badge", "progress_bar", "attempts_display", "queue",
                    "created_at", "duration"]
    list_filter = ["status", "kind", "queue", ("tenant", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["id", "kind", "last_error"]
    readonly_fields = [field.name for field in Job._meta.fields]
    inlines = [AttemptInline]
    list_select_related = ["tenant"]

    # Jobs change only through the engine's services (enqueue, cancel, stop, retry), never a raw form.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and (obj is None or obj.is_finished)

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return format_html('<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px">{}</span>',
                           STATUS_COLOURS.get(job.status, "#333"), job.get_status_display())

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, job: Job) -> str:
        return format_html('<progress max="100" value="{}"></progress> {}', job.progress, job.progress_message)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"
