"""Tenant-scoped reads of reports."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from reports.models import Report
from reports.registry import report_types
from tenants.models import Role
from tenants.selectors import tenant_ids_with_role


def report_list_for_user(*, user) -> QuerySet[Report]:
    """Reports a user may see and download: those of their tenants whose type their role there allows
    (a tenant data export only for the tenant's admins); superusers see all."""
    reports = Report.objects.select_related("tenant", "job", "requested_by")
    if getattr(user, "is_superuser", False):
        return reports
    allowed = Q(pk__in=[])
    for role in Role.values:
        types = [kind.name for kind in report_types() if kind.role == role]
        if types:
            allowed |= Q(tenant_id__in=tenant_ids_with_role(user=user, role=role), type__in=types)
    return reports.filter(allowed)


def report_types_for_user(*, user):
    """The report types a user may request in at least one tenant."""
    return [kind for kind in report_types()
            if getattr(user, "is_superuser", False) or tenant_ids_with_role(user=user, role=kind.role)]
