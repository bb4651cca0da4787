"""Tenant admin and the tenant-scoped base class every ModelAdmin in the project uses."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse

from tenants.models import Membership, Role, Tenant
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

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(super().get_queryset(request), request.user)

    def scope(self, queryset: QuerySet, user, role: str = Role.VIEWER) -> QuerySet:
        if user.is_superuser:
            return queryset
        lookup = f"{self.tenant_path}__in" if self.tenant_path else "pk__in"
        # Tenant ids, not a subquery: see tenant_ids_with_role.
        return queryset.filter(**{lookup: tenant_ids_with_role(user=user, role=role)})

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
        return len(self.lookup_choices) + (1 if self.include_empty_choice else 0) > 1

    @property
    def include_empty_choice(self) -> bool:
        # "No tenant" means system rows, which only superusers see.
        return self.field.null and self._superuser

    def __init__(self, field, request, params, model, model_admin, field_path):
        self._superuser = request.user.is_superuser
        super().__init__(field, request, params, model, model_admin, field_path)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class TenantAddForm(forms.ModelForm):
    """A new tenant and who onboarding makes its first admin (they get a welcome email to set a password)."""

    admin_email = forms.EmailField(help_text="The first admin's address; the welcome email goes here.")
    admin_username = forms.CharField(required=False, max_length=150, help_text="Defaults to the email address.")
    webhook_url = forms.URLField(required=False, max_length=2000, assume_scheme="https",
                                 help_text="Optional: a webhook endpoint for failed jobs.")

    class Meta:
        model = Tenant
        fields = ["name", "slug", "active", "retention_succeeded_days", "retention_failed_days"]

    def clean(self):
        cleaned = super().clean()
        from tenants.services import tenant_onboarding_payload

        try:
            self.onboarding = tenant_onboarding_payload(
                admin_email=cleaned.get("admin_email") or "", admin_username=cleaned.get("admin_username") or "",
                webhook_url=cleaned.get("webhook_url") or "")
        except forms.ValidationError as exc:
            for field, messages in exc.message_dict.items():
                if field not in self.errors:
                    self.add_error(field, messages)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = ""
    change_role = Role.ADMIN  # a tenant's admins set its retention; everything else is for superusers
    list_display = ["name", "slug", "active", "work", "onboarding", "created_at"]
    list_filter = ["active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TenantAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "slug", "admin_email", "admin_username", "webhook_url", "retention_succeeded_days",
                    "retention_failed_days"]
        return ["name", "slug", "active", "concurrency_limit", "work", "retention_succeeded_days",
                "retention_failed_days", "onboarding"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # The limit is the product's fairness between tenants: a tenant's own admins do not raise it.
        return ["onboarding", "work"] if request.user.is_superuser else [
            "name", "slug", "active", "concurrency_limit", "work", "onboarding"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if obj is None else {}

    def get_inlines(self, request, obj):
        return self.inlines if request.user.is_superuser else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="onboarding")
    def onboarding(self, tenant: Tenant) -> str:
        from django.urls import reverse
        from django.utils.html import format_html

        from jobs.admin import progress_html
        from jobs.models import Job

        job = Job.objects.filter(tenant=tenant, kind="tenants.onboard").order_by("-id").first()
        if job is None:
            return "Done" if tenant.onboarded_at else "-"
        return format_html('<a href="{}">{}</a> {}', reverse("admin:jobs_job_change", args=[job.pk]),
                           job.get_status_display(), progress_html(job))

    actions = ["export_data", "pause_work", "resume_work", "cancel_waiting"]

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_role(request, Role.ADMIN)

    @admin.display(description="work")
    def work(self, tenant: Tenant) -> str:
        if tenant.paused_at:
            by = f" by {tenant.paused_by}" if tenant.paused_by_id else ""
            return f"Paused since {tenant.paused_at:%Y-%m-%d %H:%M}{by}"
        return "Running"

    def _kill_switch(self, request: HttpRequest, queryset: QuerySet[Tenant], act, done: str) -> None:
        from django.contrib import messages

        allowed = queryset.filter(pk__in=tenant_list_with_role(user=request.user, role=Role.ADMIN))
        for tenant in allowed:
            event = act(tenant=tenant, user=request.user)
            self.message_user(request, f"{tenant}: {done} {event.outcome}", messages.SUCCESS)
        refused = queryset.count() - allowed.count()
        if refused:
            self.message_user(request, f"{refused} tenant(s) skipped: this needs the admin role there.",
                              messages.WARNING)

    @admin.action(description="Pause all work of the selected tenants (kill switch)", permissions=["export"])
    def pause_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        from jobs.staff import staff_tenant_pause

        self._kill_switch(request, queryset, staff_tenant_pause, "no job starts until resumed.")

    @admin.action(description="Resume the selected tenants' work", permissions=["export"])
    def resume_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        from jobs.staff import staff_tenant_resume

        self._kill_switch(request, queryset, staff_tenant_resume, "waiting jobs are handed over.")

    @admin.action(description="Cancel every waiting job of the selected tenants", permissions=["export"])
    def cancel_waiting(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        from jobs.staff import staff_tenant_cancel_waiting

        self._kill_switch(request, queryset, staff_tenant_cancel_waiting, "")

    @admin.action(description="Export the tenant's data (zip of CSV files)", permissions=["export"])
    def export_data(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        from django.contrib import messages
        from django.urls import reverse
        from django.utils.html import format_html

        from jobs.models import Source
        from reports.services import report_request

        for tenant in queryset.filter(pk__in=tenant_list_with_role(user=request.user, role=Role.ADMIN)):
            report = report_request(tenant=tenant, user=request.user, type="exports.tenant_data", format="csv",
                                    source=Source.ADMIN)
            self.message_user(request, format_html('Exporting {}: <a href="{}">follow it here</a>.', tenant,
                                                   reverse("reports:detail", args=[report.pk])), messages.SUCCESS)
        refused = queryset.exclude(pk__in=tenant_list_with_role(user=request.user, role=Role.ADMIN)).count()
        if refused:
            self.message_user(request, f"{refused} tenant(s) skipped: exporting needs the admin role there.",
                              messages.WARNING)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            from jobs.models import Source
            from tenants.services import tenant_onboard_start

            tenant_onboard_start(tenant=obj, user=request.user, source=Source.ADMIN, **form.onboarding)


def is_last_admin(membership: Membership) -> bool:
    others = Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.ADMIN).exclude(pk=membership.pk)
    return membership.role == Role.ADMIN and not others.exists()


class MemberForm(forms.ModelForm):
    """Tenant admins name the user by username: they never get a list of every account."""

    username = forms.CharField(max_length=150, help_text="The exact username of an existing staff account.")

    class Meta:
        model = Membership
        fields = ["tenant", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            self.fields["username"].disabled = True

    def clean_role(self):
        role = self.cleaned_data["role"]
        if self.instance.pk and role != Role.ADMIN and is_last_admin(Membership.objects.get(pk=self.instance.pk)):
            raise forms.ValidationError("This is the tenant's last admin; make someone else admin first.")
        return role

    def clean_username(self):
        username = self.cleaned_data["username"]
        if self.instance.pk:
            return username
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active account is called {username!r}.")
        self.instance.user = user
        return username

    def clean(self):
        cleaned = super().clean()
        user = getattr(self.instance, "user", None) if not self.instance.pk else None
        tenant = cleaned.get("tenant")
        if user is not None and tenant is not None and Membership.objects.filter(user=user, tenant=tenant).exists():
            self.add_error("username", f"{user.get_username()} is already a member of {tenant}.")
        return cleaned


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    change_role = Role.ADMIN
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", ("tenant", ScopedTenantFilter)]
    search_fields = ["user__username", "tenant__name"]
    list_select_related = ["user", "tenant"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if not request.user.is_superuser:
            kwargs["form"] = MemberForm
            kwargs["fields"] = ["username", "tenant", "role"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_autocomplete_fields(self, request):
        return ["user"] if request.user.is_superuser else []

    def has_delete_permission(self, request, obj=None) -> bool:
        # Tenant admins cannot lock their tenant out of managing itself.
        if obj is not None and not request.user.is_superuser and is_last_admin(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj is not None and not request.user.is_superuser else []

    def save_model(self, request, obj, form, change) -> None:
        from jobs.staff import membership_recorded

        super().save_model(request, obj, form, change)
        membership_recorded(user=request.user, membership=obj, change="change" if change else "add")

    def delete_model(self, request, obj) -> None:
        from jobs.staff import membership_recorded

        membership_recorded(user=request.user, membership=obj, change="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset:
            self.delete_model(request, membership)
