from __future__ import annotations

from django.conf import settings
from django.db import models


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Retention of finished jobs, in days; empty means the project's default (JOBS_RETENTION_* settings).
    retention_succeeded_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days to keep succeeded jobs. Empty: the project's default.")
    retention_failed_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days to keep failed and cancelled jobs. Empty: the project's default.")
    # Caps by count, on top of the days: the newest N are kept, older ones go at the next cleanup.
    keep_succeeded = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep at most this many succeeded jobs (the newest). Empty: the project's "
                                         "default (JOBS_KEEP_SUCCEEDED; none unless set).")
    keep_failed = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep at most this many failed and cancelled jobs (the newest). Empty: the "
                                         "project's default (JOBS_KEEP_FAILED; none unless set).")
    # db_default: processes still on the previous release insert tenants without this column.
    onboarding_steps = models.JSONField(default=list, db_default=models.Value([], models.JSONField()), blank=True,
                                        editable=False,
                                        help_text="Onboarding steps done so far; a retry skips them.")
    onboarded_at = models.DateTimeField(null=True, blank=True, editable=False,
                                        help_text="When onboarding finished its last step.")
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Jobs this tenant may have queued or running at once. Empty: the project's default "
                  "(JOBS_TENANT_CONCURRENCY); 0: no limit.")
    # The kill switch: a paused tenant's waiting jobs stay in the database and none of its jobs starts.
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


# viewer reads; operator also retries, cancels and stops; admin also deletes, cleans and manages members.
ROLE_RANK: dict[str, int] = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

# What each role may do in its tenant, in the words the console uses (a refusal page shows them).
ROLE_ALLOWS: dict[str, str] = {
    Role.VIEWER: "see its jobs, batches, schedules, emails, webhook deliveries, reports and audit trail",
    Role.OPERATOR: "what a viewer may, and retry, cancel and stop its jobs and resend its emails and webhooks",
    Role.ADMIN: ("what an operator may, and delete, clean and pin its jobs, manage its members, schedules, "
                 "webhook endpoints, API tokens and retention, and pause the tenant"),
}


class Membership(models.Model):
    """A user's role in one tenant; a user may belong to several tenants."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]
        ordering = ["tenant__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"
