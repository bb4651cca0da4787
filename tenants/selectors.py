from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import Tenant


def tenant_list_for_user(*, user) -> QuerySet[Tenant]:
    """The tenants a user may see: all for superusers, their memberships' tenants for everyone else."""
    if user.is_superuser:
        return Tenant.objects.all()
    if not user.is_authenticated:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user).distinct()
