"""Retention by kind: a tenant's own days for one job kind's finished jobs (tenant admins; audited)."""
from __future__ import annotations

from django import forms
from django.contrib import admin

from jobs.models import AuditAction, KindRetention
from jobs.registry import kind_names, tenant_kind_names
from jobs.staff import audit_event_record
from tenants.models import Role
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin


class KindRetentionForm(forms.ModelForm):
    kind = forms.ChoiceField(help_text="The job kind these days apply to, in this tenant.")
    user = None  # set by the admin

    class Meta:
        model = KindRetention
        fields = ["tenant", "kind", "succeeded_days", "failed_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = kind_names() if self.user is not None and self.user.is_superuser else tenant_kind_names()
        self.fields["kind"].choices = [(name, name) for name in names]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("succeeded_days") is None and cleaned.get("failed_days") is None:
            raise forms.ValidationError("Give the days for succeeded jobs, for failed ones, or both.")
        return cleaned


@admin.register(KindRetention)
class KindRetentionAdmin(TenantScopedAdmin):
    change_role = Role.ADMIN
    form = KindRetentionForm
    list_display = ["kind", "tenant", "succeeded_days", "failed_days"]
    list_filter = [("tenant", ScopedTenantFilter)]
    search_fields = ["kind"]
    list_select_related = ["tenant"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_event_record(user=request.user, action=AuditAction.RETENTION_CHANGE, tenant=obj.tenant,
                           target=f"retention of {obj.kind}",
                           outcome=f"Succeeded: {_days(obj.succeeded_days)}; failed and cancelled: "
                                   f"{_days(obj.failed_days)}.")

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        audit_event_record(user=request.user, action=AuditAction.RETENTION_CHANGE, tenant=obj.tenant,
                           target=f"retention of {obj.kind}", outcome="Removed: the kind's or tenant's days apply.")


def _days(days: int | None) -> str:
    return "as before" if days is None else f"{days} day{'s' if days != 1 else ''}"
