"""Staff pages for API tokens: tenant admins make their tenant's (the token is shown once) and revoke them;
superusers also make platform tokens (no tenant)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from jobs.api.models import ApiToken
from jobs.api.services import api_token_create, api_token_revoke
from tenants.scoped_admin import ScopedTenantFilter, TenantScopedAdmin
from tenants.models import Role


class TokenAddForm(forms.ModelForm):
    user = None  # set by the admin: only superusers make platform tokens

    class Meta:
        model = ApiToken
        fields = ["tenant", "name", "scope"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not (self.user is not None and self.user.is_superuser):
            self.fields["tenant"].required = True
            self.fields["tenant"].help_text = ""

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("tenant") is None and "tenant" not in self.errors and not (self.user and self.user.is_superuser):
            self.add_error("tenant", "Choose a tenant: platform tokens are for superusers.")
        return cleaned


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    change_role = Role.ADMIN
    list_display = ["name", "prefix", "reach", "scope", "created_by", "created_at", "last_used_at", "state"]
    list_filter = [StateFilter, "scope", ("tenant", ScopedTenantFilter)]
    search_fields = ["name", "prefix"]
    list_select_related = ["tenant", "created_by", "revoked_by"]
    readonly_fields = ["prefix", "reach", "scope", "created_by", "created_at", "last_used_at", "state",
                       "revoked_at", "revoked_by"]
    actions = ["revoke_tokens"]
    change_form_template = "admin/api/apitoken/change_form.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TokenAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # a class made for this request by modelform_factory
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "scope"]
        return ["name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # Only the name changes; a revoked token is a record, as it was.
        return self.readonly_fields if obj.revoked_at is None else ["name", *self.readonly_fields]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.revoked_at is not None:  # nothing to save: the record, with Close
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, never deleted: the record says who made it and when it was last used

    @admin.display(description="tenant", ordering="tenant__name")
    def reach(self, token: ApiToken) -> str:
        return "Platform (every tenant's figures, queues)" if token.is_platform else str(token.tenant)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is None:
            return "Active"
        by = f" by {token.revoked_by}" if token.revoked_by_id else ""
        return f"Revoked {token.revoked_at:%Y-%m-%d %H:%M}{by}"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, secret = api_token_create(tenant=obj.tenant, name=obj.name, scope=obj.scope, user=request.user)
        obj.pk, obj.prefix, obj.created_at, obj.created_by = row.pk, row.prefix, row.created_at, row.created_by
        obj._state.adding = False
        obj.plain_token = secret  # for the page right after this one; never stored

    def response_add(self, request, obj, post_url_continue=None):
        return self.page(request, "admin/api/apitoken/token.html", no_store=True, token=obj, secret=obj.plain_token,
                         title="API token created")

    def get_urls(self):
        return [path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view),
                     name="api_apitoken_revoke")] + super().get_urls()

    def revoke_view(self, request, object_id):
        token = self.object_to_change(request, object_id)
        if request.method != "POST":
            return self.page(request, "admin/api/apitoken/revoke.html", token=token,
                             title=f"Revoke API token {token.prefix}")
        if api_token_revoke(token=token, user=request.user):
            self.message_user(request, f"Token {token} revoked: requests with it are refused.", messages.SUCCESS)
        else:
            self.message_user(request, f"Token {token} was already revoked.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:api_apitoken_change", args=[token.pk]))

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.select_related("tenant"):
            if not self.has_change_permission(request, token):
                self.message_user(request, f"{token}: only {token.tenant}'s admins may revoke it.", messages.WARNING)
                continue
            revoked += api_token_revoke(token=token, user=request.user)
        self.message_user(request, format_html("{} token(s) revoked.", revoked),
                          messages.SUCCESS if revoked else messages.WARNING)
