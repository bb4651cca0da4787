"""Staff pages for the email ledger: what was sent to whom and how it went; resend a failed message.

Bodies are not shown: a welcome email carries a one-time set-password link meant for its recipient only.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from jobs.mail.models import EmailState, OutboundEmail
from jobs.mail.services import email_resend
from jobs.models import AuditAction
from jobs.staff import audit_event_record
from tenants.scoped_admin import RecordAdmin, ScopedTenantFilter
from tenants.models import Role

STATE_COLOURS = {EmailState.PENDING: "#6c757d", EmailState.SENDING: "#0a8aa8", EmailState.SENT: "#198754",
                 EmailState.FAILED: "#dc3545", EmailState.UNKNOWN: "#c35a00"}


def job_link(job_id, label: str = "") -> str:
    if job_id is None:
        return "-"
    return format_html('<a href="{}"><code>{}</code></a>', reverse("admin:jobs_job_change", args=[job_id]),
                       label or str(job_id)[-8:])


@admin.register(OutboundEmail)
class OutboundEmailAdmin(RecordAdmin):
    list_display = ["created_at", "recipients", "subject", "tenant", "state_badge", "sends", "send_job", "bulk_job",
                    "sent_at"]
    list_truncate = {"recipients": 14, "subject": 14, "tenant": 8}
    list_filter = ["state", ("tenant", ScopedTenantFilter), "template", "created_at"]
    search_fields = ["subject", "key", "to"]
    list_select_related = ["tenant"]
    ordering = ["-created_at"]
    actions = ["resend"]
    fields = ["id", "tenant", "key", "from_email", "recipients", "subject", "template", "state_badge", "sends",
              "send_job", "bulk_job", "last_error", "created_at", "sent_at"]
    readonly_fields = fields

    @admin.display(description="to")
    def recipients(self, message: OutboundEmail) -> str:
        return ", ".join(message.to)

    @admin.display(description="state", ordering="state")
    def state_badge(self, message: OutboundEmail) -> str:
        return format_html('<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px">{}</span>',
                           STATE_COLOURS.get(message.state, "#333"), message.get_state_display())

    @admin.display(description="send job")
    def send_job(self, message: OutboundEmail) -> str:
        return job_link(message.job_id)

    @admin.display(description="bulk job")
    def bulk_job(self, message: OutboundEmail) -> str:
        return job_link(message.bulk_id)

    @admin.action(description="Resend selected messages (failed or outcome unknown)", permissions=["operate"])
    def resend(self, request, queryset):
        resent, refused = 0, []
        for message in queryset.select_related("tenant"):
            if not self.has_role(request, Role.OPERATOR, message):
                refused.append(f"{message}: your role in {message.tenant or 'the system'} does not allow it")
                continue
            try:
                email_resend(message=message, user=request.user)
            except ValidationError as exc:
                refused.append(f"{message}: {' '.join(exc.messages)}")
                continue
            resent += 1
            audit_event_record(user=request.user, action=AuditAction.RESEND, tenant=message.tenant,
                               target=f"email {message.pk} to {', '.join(message.to)}"[:255],
                               requested=1, done=1, outcome="Queued for sending again.")
        if resent:
            self.message_user(request, f"{resent} message(s) queued for sending again.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.WARNING)
