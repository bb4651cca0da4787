"""Staff pages for batches and chains: aggregate progress and counts, every member, retry the failed ones."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from jobs.admin.html import progress_html, status_badge_html
from jobs.batches import batch_retry_failed
from jobs.models import TERMINAL, Batch, Job, Status
from tenants.scoped_admin import RecordAdmin, ScopedTenantFilter
from tenants.models import Role

MEMBERS_SHOWN = 200


def members_table(batch: Batch, *, current: Job | None = None) -> str:
    """The members, in order, each with its live status and progress (the current job marked)."""
    members = list(batch.members.order_by("batch_position", "id")[:MEMBERS_SHOWN])
    rows = format_html_join("", "<tr class='{}'><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
                            "<td>{}</td></tr>", (
        ("current" if current is not None and job.pk == current.pk else "",
         job.batch_position or "", reverse("admin:jobs_job_change", args=[job.pk]), job.short_id, job.kind,
         status_badge_html(job), progress_html(job), job.last_error[:200]) for job in members))
    more = (format_html("<p>The first {} of {} are shown.</p>", MEMBERS_SHOWN, batch.total)
            if batch.total > MEMBERS_SHOWN else "")
    return format_html("<table class='batch-members'><thead><tr><th>step</th><th>job</th><th>kind</th><th>status</th>"
                       "<th>progress</th><th>error</th></tr></thead><tbody>{}</tbody></table>{}", rows, more)


@admin.register(Batch)
class BatchAdmin(RecordAdmin):
    list_display = ["name", "tenant", "shape", "progress", "counts", "state", "callback", "created"]
    list_filter = ["sequential", ("tenant", ScopedTenantFilter)]
    search_fields = ["name"]
    list_select_related = ["tenant", "callback_job"]
    actions = ["retry_failed"]
    fields = ["name", "tenant", "shape", "progress", "counts", "state", "callback", "created_by", "created_at",
              "finished_at", "members"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            done=Count("members", filter=Q(members__status__in=TERMINAL)),
            succeeded=Count("members", filter=Q(members__status=Status.SUCCEEDED)),
            failed=Count("members", filter=Q(members__status=Status.FAILED)),
            cancelled=Count("members", filter=Q(members__status=Status.CANCELLED)),
        ).order_by("-created_at", "-pk")  # a grouped query drops Meta.ordering; pages need a stable order

    @admin.display(description="kind")
    def shape(self, batch: Batch) -> str:
        return "Chain" if batch.sequential else "Batch"

    @admin.display(description="progress")
    def progress(self, batch: Batch) -> str:
        percent = round(100 * batch.done / batch.total) if batch.total else 100
        return format_html('<progress max="100" value="{}"></progress> {} of {} finished', percent, batch.done,
                           batch.total)

    @admin.display(description="counts")
    def counts(self, batch: Batch) -> str:
        waiting = batch.total - batch.done
        return f"{batch.succeeded} succeeded, {batch.failed} failed, {batch.cancelled} cancelled, {waiting} to go"

    @admin.display(description="created")
    def created(self, batch: Batch) -> str:
        return f"{batch.created_at:%Y-%m-%d %H:%M}"

    @admin.display(description="state")
    def state(self, batch: Batch) -> str:
        if batch.sequential and batch.failed:
            return "Stopped by a failed step"
        if batch.finished_at:
            return "Finished with failures" if batch.failed else "Finished"
        return "Running"

    @admin.display(description="callback")
    def callback(self, batch: Batch) -> str:
        if not batch.callback_kind:
            return "-"
        if batch.callback_job_id is None:
            return f"{batch.callback_kind} (when all have finished)"
        job = batch.callback_job
        return format_html('{} <a href="{}">{}</a> {}', batch.callback_kind,
                           reverse("admin:jobs_job_change", args=[job.pk]), job.short_id, status_badge_html(job))

    @admin.display(description="members")
    def members(self, batch: Batch) -> str:
        return members_table(batch)

    @admin.action(description="Retry the failed members", permissions=["operate"])
    def retry_failed(self, request, queryset) -> None:
        for batch in queryset.select_related("tenant"):
            if not self.has_role(request, Role.OPERATOR, batch):
                self.message_user(request, f"{batch}: your role in {batch.tenant} does not allow it.", messages.WARNING)
                continue
            retried = batch_retry_failed(batch=batch, user=request.user)
            self.message_user(request, f"{batch}: {len(retried)} failed member(s) retried.", messages.SUCCESS)
