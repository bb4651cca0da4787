"""Staff pages for webhooks: endpoints (secret shown once, rotation), messages with every delivery attempt."""
from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from jobs.mail.admin import job_link
from jobs.models import AuditAction
from jobs.staff import audit_event_record
from jobs.webhooks.destination import DestinationRefused, destination_check
from jobs.webhooks.models import MessageState, WebhookDelivery, WebhookEndpoint, WebhookMessage
from jobs.webhooks.services import webhook_endpoint_rotate_secret, webhook_resend
from tenants.scoped_admin import RecordAdmin, ScopedTenantFilter, TenantScopedAdmin
from tenants.models import Role
from tenants.selectors import tenant_ids_with_role


def event_type_choices(current: list[str] | None = None) -> list[tuple[str, str]]:
    names = sorted(set(settings.WEBHOOKS_EVENT_TYPES) | set(current or []))
    return [(name, name) for name in names]


class EndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text="Leave all unticked to receive every event.")

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "events", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["events"].choices = event_type_choices(self.instance.events if self.instance.pk else [])

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            destination_check(url)
        except DestinationRefused as exc:
            raise ValidationError(exc.message_dict["url"]) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    change_role = Role.ADMIN
    form = EndpointForm
    list_display = ["url", "tenant", "description", "events_display", "active", "health", "last_success_at",
                    "messages_link"]
    list_truncate = {"url": 16, "tenant": 8, "description": 10, "events_display": 8, "health": 8}
    list_filter = ["active", ("tenant", ScopedTenantFilter)]
    search_fields = ["url", "description"]
    list_select_related = ["tenant"]
    ordering = ["tenant__name", "url"]  # the message count's GROUP BY drops the model's default order
    readonly_fields = ["secret_status", "health", "last_success_at", "failing_since", "disabled_at",
                       "disabled_reason", "created_at", "messages_link"]
    change_form_template = "admin/webhooks/webhookendpoint/change_form.html"

    def get_fieldsets(self, request, obj=None):
        main = ["tenant", "url", "description", "events", "active"]
        if obj is None:
            return [(None, {"fields": main, "description": "A signing secret is made when you save; it is shown once."})]
        return [(None, {"fields": main}), ("State", {"fields": self.readonly_fields})]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(description="events")
    def events_display(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events) or "every event"

    @admin.display(description="health")
    def health(self, endpoint: WebhookEndpoint) -> str:
        if not endpoint.active:
            return f"Disabled: {endpoint.disabled_reason}" if endpoint.disabled_reason else "Disabled"
        if endpoint.failing_since:
            return f"Failing since {endpoint.failing_since:%Y-%m-%d %H:%M}"
        return "OK"

    @admin.display(description="secret")
    def secret_status(self, endpoint: WebhookEndpoint) -> str:
        text = "Set (shown only when made or rotated)."
        if endpoint.previous_secret_expires_at:
            text += f" The previous secret also signs until {endpoint.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC."
        return text

    @admin.display(description="messages")
    def messages_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookmessage_changelist") + "?" + urlencode({"endpoint": endpoint.pk})
        count = getattr(endpoint, "message_count", None)
        return format_html('<a href="{}">{} message{}</a>', url, count if count is not None else "All",
                           "" if count == 1 else "s")

    def save_model(self, request, obj, form, change) -> None:
        if change and "active" in form.changed_data and obj.active:
            obj.disabled_at, obj.disabled_reason, obj.failing_since = None, "", None  # enabled again: a fresh start
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, "Webhook endpoint created")

    def get_urls(self):
        return [path("<path:object_id>/rotate-secret/", self.admin_site.admin_view(self.rotate_view),
                     name="webhooks_webhookendpoint_rotate")] + super().get_urls()

    def rotate_view(self, request, object_id):
        endpoint = self.object_to_change(request, object_id)
        if request.method != "POST":
            return self.page(request, "admin/webhooks/webhookendpoint/rotate.html", endpoint=endpoint,
                             title="Rotate signing secret", grace_hours=settings.WEBHOOKS_SECRET_GRACE_HOURS)
        webhook_endpoint_rotate_secret(endpoint=endpoint)
        audit_event_record(user=request.user, action=AuditAction.ROTATE_SECRET, tenant=endpoint.tenant,
                           target=f"webhook endpoint {endpoint.url}"[:255], outcome="Secret rotated.")
        return self._secret_page(request, endpoint, "Signing secret rotated")

    def _secret_page(self, request, endpoint: WebhookEndpoint, title: str):
        return self.page(request, "admin/webhooks/webhookendpoint/secret.html", no_store=True, endpoint=endpoint,
                         secret=endpoint.secret, title=title, grace_hours=settings.WEBHOOKS_SECRET_GRACE_HOURS,
                         rotated=endpoint.previous_secret_expires_at is not None)


class EndpointFilter(admin.SimpleListFilter):
    """Endpoints of the user's tenants only: a plain related filter would list every tenant's URLs."""

    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request, model_admin):
        endpoints = WebhookEndpoint.objects.all()
        if not request.user.is_superuser:
            endpoints = endpoints.filter(tenant_id__in=tenant_ids_with_role(user=request.user, role=Role.VIEWER))
        return [(endpoint.pk, str(endpoint)[:60]) for endpoint in endpoints.order_by("url")[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(endpoint_id=self.value()) if self.value() and self.value().isdigit() else queryset


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ["attempt", "created_at", "status_code", "duration_ms", "error", "response_excerpt", "headers"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-attempt", "-created_at"]

    def has_view_permission(self, request, obj=None) -> bool:
        # Inlines have no pages of their own: the message page they sit on was found through the
        # message admin's tenant-scoped queryset.
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="request headers")
    def headers(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre style='white-space:pre-wrap;word-break:break-all;max-width:28em'>{}</pre>",
                           json.dumps(delivery.request_headers, indent=1))


@admin.register(WebhookMessage)
class WebhookMessageAdmin(RecordAdmin):
    list_display = ["created_at", "event_type", "endpoint", "tenant", "state", "delivery_count", "deliver_job"]
    list_truncate = {"event_type": 14, "endpoint": 14, "tenant": 8}
    list_filter = ["state", "event_type", EndpointFilter, ("tenant", ScopedTenantFilter)]
    search_fields = ["id", "event_type"]
    list_select_related = ["tenant", "endpoint"]
    ordering = ["-created_at"]
    actions = ["resend"]
    fields = ["id", "tenant", "endpoint", "event_type", "state", "deliver_job", "created_at", "body_pretty"]
    readonly_fields = fields
    inlines = [DeliveryInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(deliveries_made=Count("deliveries"))

    @admin.display(description="deliveries")
    def delivery_count(self, message: WebhookMessage) -> int:
        return message.deliveries_made

    @admin.display(description="job")
    def deliver_job(self, message: WebhookMessage) -> str:
        return job_link(message.job_id)

    @admin.display(description="body")
    def body_pretty(self, message: WebhookMessage) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(json.loads(message.body), indent=2))

    @admin.action(description="Resend selected messages (same id and body)", permissions=["operate"])
    def resend(self, request, queryset):
        resent = 0
        for message in queryset.select_related("endpoint", "tenant"):
            if not self.has_role(request, Role.OPERATOR, message):
                self.message_user(request, f"{message}: your role in {message.tenant} does not allow it.",
                                  messages.WARNING)
                continue
            if message.state == MessageState.PENDING:
                self.message_user(request, f"{message} is still being delivered.", messages.WARNING)
                continue
            try:
                webhook_resend(message=message, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{message}: {' '.join(exc.messages)}", messages.WARNING)
                continue
            resent += 1
            audit_event_record(user=request.user, action=AuditAction.RESEND, tenant=message.tenant,
                               target=f"webhook {message.pk} to {message.endpoint.url}"[:255], requested=1, done=1,
                               outcome="Queued for delivery again.")
        if resent:
            self.message_user(request, f"{resent} message(s) queued for delivery again.", messages.SUCCESS)
