"""Tenant admin and the tenant-scoped base class every ModelAdmin in the project uses."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.models import Membership, Tenant
from tenants.selectors import tenant_list_for_user


class TenantScopedAdmin(admin.ModelAdmin):
    """Staff see and pick only their tenants' rows; superusers see everything.

    `tenant_path` is the lookup from the model to its Tenant ("tenant", or "" for Tenant itself).
    Rows without a tenant (system jobs) are visible to superusers only.
    """

    tenant_path = "tenant"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        tenants = tenant_list_for_user(user=request.user)
        lookup = f"{self.tenant_path}__in" if self.tenant_path else "pk__in"
        return queryset.filter(**{lookup: tenants})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Tenant and not request.user.is_superuser:
            kwargs["queryset"] = tenant_list_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _is_member(self, request: HttpRequest) -> bool:
        user = request.user
        return user.is_active and user.is_staff and (user.is_superuser or user.memberships.exists())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_member(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._is_member(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = ""
    list_display = ["name", "slug", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "tenant__name"]
    autocomplete_fields = ["user"]
