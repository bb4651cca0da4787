"""The audit trail: read-only for everyone, scoped to the user's tenants and their own actions."""
from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from jobs import selectors
from jobs.admin.filters import BoundedCountPaginator
from jobs.admin.html import progress_html, status_badge_html
from jobs.models import SHORT_ID_LENGTH, AuditEvent
from tenants.models import Role
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin

@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """The audit trail: read-only for everyone, scoped to the user's tenants and their own actions."""

    list_display = ["created_at", "actor_name", "action", "tenant", "target", "result", "state",
                    "progress_of_background_job"]
    list_truncate = {"actor_name": 8, "action": 10, "tenant": 8, "target": 14, "result": 12}
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

    @admin.display(description="result")
    def result(self, event: AuditEvent) -> str:
        """'1 of 1 done', '40 of 50 done, 6 skipped, 4 refused': the counts in one column."""
        if not event.requested and not event.done:
            return "-"
        parts = [f"{event.done} of {event.requested} done"]
        parts += [f"{count} {label}" for count, label in ((event.skipped, "skipped"), (event.refused, "refused")) if count]
        return ", ".join(parts)

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
