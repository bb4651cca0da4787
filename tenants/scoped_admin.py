"""The tenant-scoped admin bases every ModelAdmin in the project builds on: one place that scopes
querysets, foreign-key choices, list filters and permissions to the user's memberships and roles."""
from __future__ import annotations

from datetime import datetime
from functools import cache

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from tenants.models import Role, Tenant
from tenants.selectors import tenant_ids_with_role, tenant_list_for_user, tenant_list_with_role, user_has_role


class TenantScopedAdmin(admin.ModelAdmin):
    """Staff see and pick only their tenants' rows; superusers see everything.

    `tenant_path` is the lookup from the model to its Tenant ("tenant", or "" for Tenant itself).
    Rows without a tenant (system jobs) are visible to superusers only. `get_queryset` is the one
    scoping hook: change, delete, history, actions and autocomplete all go through it. Members of any
    role may view; writes need `change_role` in the row's tenant (superusers only when it is None).
    """

    tenant_path = "tenant"
    change_role: str | None = None
    # List columns cut to this width (em) with an ellipsis, whole on hover (templates/admin/change_list.html).
    list_truncate: dict[str, float] = {}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(super().get_queryset(request), request.user)

    def scope(self, queryset: QuerySet, user, role: str = Role.VIEWER) -> QuerySet:
        if user.is_superuser:
            return queryset
        lookup = f"{self.tenant_path}__in" if self.tenant_path else "pk__in"
        # Tenant ids, not a subquery: see tenant_ids_with_role.
        return queryset.filter(**{lookup: tenant_ids_with_role(user=user, role=role)})

    def get_list_display(self, request: HttpRequest):
        # Moments in lists read as "3 minutes ago", with the exact time and zone on hover.
        return [relative_column(self.model, name) if isinstance(name, str) and _is_moment(self.model, name) else name
                for name in super().get_list_display(request)]

    def get_sortable_by(self, request: HttpRequest):
        sortable = list(super().get_sortable_by(request))
        return sortable + [relative_column(self.model, name) for name in sortable
                           if isinstance(name, str) and _is_moment(self.model, name)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Tenant and not request.user.is_superuser:
            kwargs["queryset"] = tenant_list_with_role(user=request.user, role=self.change_role or Role.ADMIN)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def tenant_of(self, obj) -> Tenant | None:
        for part in filter(None, self.tenant_path.split("__")):
            obj = getattr(obj, part)
        return obj

    def page(self, request: HttpRequest, template: str, *, no_store: bool = False, **context) -> TemplateResponse:
        """One of our own admin pages under this model: the admin's context (site, opts) plus `context`.
        `no_store` for a page showing a secret once."""
        response = TemplateResponse(request, template,
                                    {**self.admin_site.each_context(request), "opts": self.model._meta, **context})
        if no_store:
            response["Cache-Control"] = "no-store"
        return response

    def object_to_change(self, request: HttpRequest, object_id: str):
        """The row for a page that changes it: 404 when out of the user's scope, 403 without the role."""
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No such {self.model._meta.verbose_name}.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def has_role(self, request: HttpRequest, role: str, obj=None) -> bool:
        """Does the user hold `role` in `obj`'s tenant, or (without obj) in any tenant?"""
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if obj is not None and self.tenant_of(obj) is None:
            return user.is_superuser
        return user_has_role(user=user, role=role, tenant=self.tenant_of(obj) if obj is not None else None)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_role(request, Role.VIEWER)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_role(request, Role.VIEWER, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or (self.change_role is not None and self.has_role(request, self.change_role))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser or (
            self.change_role is not None and self.has_role(request, self.change_role, obj))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_change_permission(request, obj)


class RecordAdmin(TenantScopedAdmin):
    """Records that change only through the services (audited actions), never through a raw form:
    no add, change or delete views. Operators may take the admin's actions (`operate`)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return self.has_role(request, Role.OPERATOR)


class ScopedTenantFilter(admin.RelatedFieldListFilter):
    """The tenant list filter: the user's tenants only, without a query over the filtered table."""

    def field_choices(self, field, request, model_admin):
        return [(tenant.pk, str(tenant)) for tenant in tenant_list_for_user(user=request.user).order_by("name")]

    def has_output(self) -> bool:
        # Django applies only the filters it shows: one asked for by a link or a saved selection is shown
        # (and applied) even with a single tenant to choose from, as jobs.selectors.job_selection applies it.
        return bool(self.used_parameters) or len(self.lookup_choices) + (1 if self.include_empty_choice else 0) > 1

    @property
    def include_empty_choice(self) -> bool:
        # "No tenant" means system rows, which only superusers see.
        return self.field.null and self._superuser

    def __init__(self, field, request, params, model, model_admin, field_path):
        self._superuser = request.user.is_superuser
        super().__init__(field, request, params, model, model_admin, field_path)
        self.empty_value_display = "None (system-wide)"  # system jobs and schedules, platform tokens


def when_html(value: datetime | None, now: datetime | None = None) -> str:
    """A moment where people scan: relative ("3 minutes ago", "in 2 hours"), the exact time and zone on hover."""
    if value is None:
        return "-"
    now = now or timezone.now()
    seconds = (now - value).total_seconds()
    if abs(seconds) < 1:
        words = "just now"
    elif abs(seconds) < 60:
        words = f"{abs(seconds):.0f} s ago" if seconds >= 0 else f"in {-seconds:.0f} s"
    else:
        words = f"{timesince(value, now, depth=1)} ago" if seconds > 0 else f"in {timeuntil(value, now, depth=1)}"
    exact = formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, words)


def _is_moment(model, name: str) -> bool:
    try:
        return model._meta.get_field(name).get_internal_type() == "DateTimeField"
    except FieldDoesNotExist:  # a method or an admin display callable, not a field
        return False


@cache
def relative_column(model, name: str):
    """A list column showing the field `name` as `when_html` does, sorted and titled as the field."""
    field = model._meta.get_field(name)

    def column(obj) -> str:
        return when_html(getattr(obj, name))

    column.__name__ = name  # the column keeps the field's CSS class (field-<name>)
    column.short_description = field.verbose_name
    column.admin_order_field = name
    return column
