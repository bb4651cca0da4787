"""Tenant-scoped reads: which tenants a user may see, and where a user holds at least a given role."""
from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import ROLE_RANK, Membership, Role, Tenant


def tenant_list_for_user(*, user) -> QuerySet[Tenant]:
    """The tenants a user may see: all for superusers, their memberships' tenants for everyone else."""
    return tenant_list_with_role(user=user, role=Role.VIEWER)


def tenant_list_with_role(*, user, role: str) -> QuerySet[Tenant]:
    """The tenants where `user` holds `role` or a higher one (superusers: every tenant)."""
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=tenant_ids_with_role(user=user, role=role))


def tenant_ids_with_role(*, user, role: str) -> list[int]:
    """Ids of the tenants where `user` holds `role` or higher (not for superusers, who hold every role).

    Ids rather than a subquery: with `tenant_id IN (7)` PostgreSQL plans for tenant 7 (its row
    counts, the (tenant, status, id) index); with `tenant_id IN (SELECT ...)` it plans for an average
    tenant, and for a small one walks the primary key through most of the table to fill one page.
    """
    wanted = ROLE_RANK[role]
    return sorted(tenant_id for tenant_id, rank in _ranks(user).items() if rank >= wanted)


def _ranks(user) -> dict[int, int]:
    # Read once per user object, which Django loads afresh for every request: an admin page asks
    # "may this user ...?" dozens of times and each answer would otherwise be a query.
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    ranks = getattr(user, "_tenant_ranks", None)
    if ranks is None:
        ranks = {tenant_id: ROLE_RANK[role]
                 for tenant_id, role in Membership.objects.filter(user=user).values_list("tenant_id", "role")}
        user._tenant_ranks = ranks
    return ranks


def user_has_role(*, user, role: str, tenant: Tenant | None = None) -> bool:
    """Does `user` hold `role` (or higher) in `tenant`, or, without a tenant, in any tenant at all?

    System rows (no tenant) belong to superusers only, so asking about `tenant=None` is asking "any".
    """
    if getattr(user, "is_superuser", False):
        return True
    ids = tenant_ids_with_role(user=user, role=role)
    return tenant.pk in ids if tenant is not None else bool(ids)


def tenant_admin_emails(*, tenant: Tenant) -> list[str]:
    """Email addresses of the tenant's active admins (those who have one)."""
    return sorted(set(
        Membership.objects.filter(tenant=tenant, role=Role.ADMIN, user__is_active=True)
        .exclude(user__email="").values_list("user__email", flat=True)
    ))


def memberships_for_user(*, user) -> list[Membership]:
    """The user's roles, one per tenant, with each tenant."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user, tenant__active=True).select_related("tenant")
                .order_by("tenant__name"))


def tenant_admin_names(*, tenant: Tenant, exclude_user=None) -> list[str]:
    """Who to ask for more access in a tenant: its active admins, by name and address where they have one."""
    admins = Membership.objects.filter(tenant=tenant, role=Role.ADMIN, user__is_active=True).select_related("user")
    if exclude_user is not None:
        admins = admins.exclude(user=exclude_user)
    names = []
    for membership in admins.order_by("user__username"):
        user = membership.user
        name = user.get_full_name() or user.get_username()
        names.append(f"{name} <{user.email}>" if user.email else name)
    return names
