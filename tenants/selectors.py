"""Tenant-scoped reads: which tenants a user may see, and where a user holds at least a given role."""
from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import ROLE_RANK, Role, Tenant


def tenant_list_for_user(*, user) -> QuerySet[Tenant]:
    """The tenants a user may see: all for superusers, their memberships' tenants for everyone else."""
    return tenant_list_with_role(user=user, role=Role.VIEWER)


def tenant_list_with_role(*, user, role: str) -> QuerySet[Tenant]:
    """The tenants where `user` holds `role` or a higher one (superusers: every tenant)."""
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Tenant.objects.none()
    roles = [name for name, rank in ROLE_RANK.items() if rank >= ROLE_RANK[role]]
    return Tenant.objects.filter(memberships__user=user, memberships__role__in=roles).distinct()


def user_has_role(*, user, role: str, tenant: Tenant | None = None) -> bool:
    """Does `user` hold `role` (or higher) in `tenant`, or, without a tenant, in any tenant at all?

    System rows (no tenant) belong to superusers only, so asking about `tenant=None` is asking "any".
    """
    if getattr(user, "is_superuser", False):
        return True
    tenants = tenant_list_with_role(user=user, role=role)
    if tenant is not None:
        tenants = tenants.filter(pk=tenant.pk)
    return tenants.exists()
