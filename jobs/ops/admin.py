"""Incidents in the admin: read-only, superusers only (they are the whole system's, not a tenant's)."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.ops.models import Incident
from tenants.scoped_admin import RecordAdmin


class IncidentStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() in ("open", "resolved"):
            return queryset.filter(resolved_at__isnull=self.value() == "open")
        return queryset


@admin.register(Incident)
class IncidentAdmin(RecordAdmin):
    list_display = ["check_name", "state", "summary", "opened_at", "resolved_at", "lasted"]
    list_filter = [IncidentStateFilter, "check_name"]
    search_fields = ["summary", "resolution"]
    fields = ["check_name", "state", "summary", "value", "threshold", "peak_value", "opened_at", "last_seen_at",
              "last_summary", "resolved_at", "resolution", "lasted"]
    readonly_fields = fields

    def scope(self, queryset: QuerySet, user, role: str = "") -> QuerySet:
        return queryset if user.is_superuser else queryset.none()

    def has_role(self, request: HttpRequest, role: str, obj=None) -> bool:
        user = request.user
        return user.is_active and user.is_staff and user.is_superuser

    @admin.display(description="state")
    def state(self, incident: Incident) -> str:
        return "Open" if incident.is_open else "Resolved"

    @admin.display(description="lasted")
    def lasted(self, incident: Incident) -> str:
        seconds = int(incident.duration.total_seconds())
        hours, rest = divmod(seconds, 3600)
        text = f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
        return text + (" so far" if incident.is_open else "")
