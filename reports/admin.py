"""Reports in the admin: every report of the staff member's tenants, with its progress and file.
"Add report" leads to the same request flow as the site (reports/views.py)."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from jobs.admin.html import progress_html
from reports.models import Report
from reports.registry import report_type_title
from reports.selectors import report_list_for_user, report_types_for_user
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin


@admin.register(Report)
class ReportAdmin(TenantScopedAdmin):
    list_display = ["title", "type_title", "format", "state_display", "tenant", "rows", "size_display", "created_at",
                    "download"]
    list_truncate = {"title": 14, "type_title": 9, "state_display": 14, "tenant": 8}
    list_filter = ["state", "format", "type", ("tenant", ScopedTenantFilter), "created_at"]
    list_select_related = ["tenant", "job", "requested_by"]
    search_fields = ["title"]
    fields = ["title", "tenant", "type_title", "format", "parameters", "state_display", "error", "requested_by",
              "notify", "created_at", "started_at", "finished_at", "rows", "size_display", "checksum", "expires_at",
              "job_link", "download"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Report]:
        # The reports' own selector: a tenant data export only for its tenant's admins.
        return report_list_for_user(user=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and bool(report_types_for_user(user=request.user))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # files expire by retention; the rows are their history

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return HttpResponseRedirect(reverse("reports:choose"))

    @admin.display(description="type", ordering="type")
    def type_title(self, report: Report) -> str:
        return report_type_title(report.type)

    @admin.display(description="state", ordering="state")
    def state_display(self, report: Report) -> str:
        if report.is_finished or report.job is None:
            return report.get_state_display()
        return format_html("{} {}", report.get_state_display(), progress_html(report.job))

    @admin.display(description="size", ordering="size")
    def size_display(self, report: Report) -> str:
        return filesizeformat(report.size) if report.size is not None else "-"

    @admin.display(description="job")
    def job_link(self, report: Report) -> str:
        if report.job_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[report.job_id]), report.job)

    @admin.display(description="file")
    def download(self, report: Report) -> str:
        if report.is_ready:
            return format_html('<a href="{}">Download</a>', reverse("reports:download", args=[report.pk]))
        return format_html('<a href="{}">Status</a>', reverse("reports:detail", args=[report.pk]))
