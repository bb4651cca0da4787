"""Tenants and memberships in the admin: onboarding, retention, the kill switch, members by role."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from jobs.admin.html import progress_html
from jobs.models import Job, Source
from jobs.staff import (
    membership_recorded, staff_tenant_cancel_waiting, staff_tenant_pause, staff_tenant_resume,
)
from reports.services import report_request
from tenants.models import Membership, Role, Tenant
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin
from tenants.selectors import tenant_list_with_role
from tenants.services import tenant_onboard_start, tenant_onboarding_payload


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
        fields = ["name", "slug", "active", "retention_succeeded_days", "retention_failed_days", "keep_succeeded",
                  "keep_failed"]

    def clean(self):
        cleaned = super().clean()
        try:
            self.onboarding = tenant_onboarding_payload(
                admin_email=cleaned.get("admin_email") or "", admin_username=cleaned.get("admin_username") or "",
                webhook_url=cleaned.get("webhook_url") or "")
        except forms.ValidationError as exc:
            for field, errors in exc.message_dict.items():
                if field not in self.errors:
                    self.add_error(field, errors)
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
                "retention_failed_days", "keep_succeeded", "keep_failed", "onboarding"]

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
        job = Job.objects.filter(tenant=tenant, kind="tenants.onboard").order_by("-id").first()
        if job is None:
            return "Done" if tenant.onboarded_at else "-"
        return format_html('<a href="{}">{}</a> {}', reverse("admin:jobs_job_change", args=[job.pk]),
                           job.get_status_display(), progress_html(job))

    actions = ["export_data", "pause_work", "resume_work", "cancel_waiting"]

    def has_manage_tenant_permission(self, request: HttpRequest) -> bool:
        """The tenant's own switches (export, pause, resume, cancel waiting) are its admins'."""
        return self.has_role(request, Role.ADMIN)

    @admin.display(description="work")
    def work(self, tenant: Tenant) -> str:
        if tenant.paused_at:
            by = f" by {tenant.paused_by}" if tenant.paused_by_id else ""
            return f"Paused since {tenant.paused_at:%Y-%m-%d %H:%M}{by}"
        return "Running"

    def _kill_switch(self, request: HttpRequest, queryset: QuerySet[Tenant], act, done: str) -> None:
        allowed = queryset.filter(pk__in=tenant_list_with_role(user=request.user, role=Role.ADMIN))
        for tenant in allowed:
            event = act(tenant=tenant, user=request.user)
            self.message_user(request, f"{tenant}: {done} {event.outcome}", messages.SUCCESS)
        refused = queryset.count() - allowed.count()
        if refused:
            self.message_user(request, f"{refused} tenant(s) skipped: this needs the admin role there.",
                              messages.WARNING)

    @admin.action(description="Pause all work of the selected tenants (kill switch)", permissions=["manage_tenant"])
    def pause_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._kill_switch(request, queryset, staff_tenant_pause, "no job starts until resumed.")

    @admin.action(description="Resume the selected tenants' work", permissions=["manage_tenant"])
    def resume_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._kill_switch(request, queryset, staff_tenant_resume, "waiting jobs are handed over.")

    @admin.action(description="Cancel every waiting job of the selected tenants", permissions=["manage_tenant"])
    def cancel_waiting(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._kill_switch(request, queryset, staff_tenant_cancel_waiting, "")

    @admin.action(description="Export the tenant's data (zip of CSV files)", permissions=["manage_tenant"])
    def export_data(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
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
        super().save_model(request, obj, form, change)
        membership_recorded(user=request.user, membership=obj, change="change" if change else "add")

    def delete_model(self, request, obj) -> None:
        membership_recorded(user=request.user, membership=obj, change="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset:
            self.delete_model(request, membership)
