"""The queues page (counts per queue and tenant, pause and resume, the last 24 hours as a chart) and
failure triage (failed and retrying jobs grouped by fingerprint), both pages of the job admin."""
from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from jobs import selectors, staff, transport
from jobs.models import UNFINISHED, WAITING, AuditAction, Status
from jobs.stats import Bar


class QueuePages:
    """The job admin's queues and triage pages; actions on a filter go through `staff` like the list's."""

    def queues_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        visible = selectors.job_list_for_user(user=request.user)
        rows = selectors.queue_overview(jobs=visible)
        buckets = selectors.throughput_by_hour(user=request.user)
        context = {
            "title": "Queues",
            "rows": rows,
            "limits": selectors.global_limit_rows(jobs=visible),
            "chart": throughput_svg(buckets),
            "buckets": buckets,
            "can_pause": request.user.is_superuser,
            "can_cancel": self.has_operate_permission(request),
            "waiting_statuses": ",".join(WAITING),
            "unfinished": UNFINISHED,
        }
        return self.page(request, "admin/jobs/queues.html", **context)

    def workers_view(self, request):
        """Every live worker: host, pid, queues, state, its current job (linked when the user may see it),
        jobs done, uptime, last heartbeat. Superusers may ask one to stop after its current job."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            name = request.POST.get("worker", "")
            event = staff.staff_worker_stop(name=name, user=request.user, reason=request.POST.get("reason", "")[:2000])
            self.message_user(request, f"Stop worker {name}: {event.outcome}", level=staff.outcome_level(event))
            return HttpResponseRedirect(reverse("admin:jobs_job_workers"))
        try:
            workers, unreachable = transport.workers_list(), ""
        except transport.TransportError as exc:
            workers, unreachable = [], str(exc)
        return self.page(request, "admin/jobs/workers.html", title="Workers", unreachable=unreachable,
                         rows=selectors.worker_rows(user=request.user, workers=workers),
                         can_stop=request.user.is_superuser)

    def queue_operation_view(self, request, name, operation):
        if request.method != "POST":
            return HttpResponse(status=405)
        if name not in settings.RQ_QUEUES:
            raise Http404("No such queue.")
        reason = request.POST.get("reason", "")[:2000]
        if operation in ("pause", "resume"):
            # A queue is shared by every tenant: the staff layer lets superusers only, and records a refusal.
            change = staff.staff_queue_pause if operation == "pause" else staff.staff_queue_resume
            event = change(name=name, user=request.user, reason=reason)
            self.message_user(request, f"Queue {name}: {event.get_action_display().lower()}. {event.outcome}")
        elif operation == "cancel-waiting":
            if not self.has_operate_permission(request):
                raise PermissionDenied("Cancelling needs the operator role.")
            selection = urlencode({"queue": name, "status__in": ",".join(WAITING)})
            self._act_on_selection(request, AuditAction.CANCEL, selection, reason)
        else:
            raise Http404("No such operation.")
        return HttpResponseRedirect(reverse("admin:jobs_job_queues"))

    def triage_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            fingerprint = request.POST.get("fingerprint", "")
            operation = request.POST.get("operation")
            if operation not in ("retry", "cancel") or not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
                raise Http404("No such operation.")
            if not self.has_operate_permission(request):
                raise PermissionDenied("Retrying and cancelling need the operator role.")
            status = Status.FAILED if operation == "retry" else Status.RETRYING
            selection = urlencode({"error_fingerprint": fingerprint, "status__exact": status})
            self._act_on_selection(request, operation, selection, request.POST.get("reason", "")[:2000])
            return HttpResponseRedirect(reverse("admin:jobs_job_triage"))
        return self.page(request, "admin/jobs/triage.html", title="Failure triage",
                         groups=selectors.failure_groups(user=request.user),
                         can_operate=self.has_operate_permission(request))

    def _act_on_selection(self, request, action: str, selection: str, reason: str) -> None:
        """An action on a filter, from the queues or triage page: now if small, in the background if not."""
        event = staff.staff_jobs_act_now_or_later(
            action=action, user=request.user, jobs=selectors.job_selection(user=request.user, selection=selection),
            selection=selection, reason=reason, tenant=self._single_tenant(request))
        self._report(request, event)


def throughput_svg(bars: list[Bar], step: timedelta = timedelta(hours=1), width: int = 720, height: int = 140) -> str:
    """Succeeded (green) and failed (red) jobs per bar (an hour, five minutes, a day) as stacked bars, each
    with its figures on hover: inline SVG, no script, no CDN."""
    peak = max([b.succeeded + b.failed for b in bars] + [1])
    slot = width / max(len(bars), 1)
    bar_width = max(slot - 4, 2)
    chart_height = height - 20
    if step >= timedelta(days=1):
        when, tick, per = "%a %d %b", "%d", "day"
    else:
        when, tick, per = "%d %b %H:%M UTC", "%H:%M" if step < timedelta(hours=1) else "%H", (
            "hour" if step == timedelta(hours=1) else f"{step.seconds // 60} minutes")
    every = max(1, len(bars) // 8)

    def rects():
        for index, bar in enumerate(bars):
            x = index * slot + 2
            ok = chart_height * bar.succeeded / peak
            bad = chart_height * bar.failed / peak
            label = f"{bar.start:{when}}: {bar.succeeded} succeeded, {bar.failed} failed"
            numbers = (x, chart_height - ok - bad, bar_width, ok, x, chart_height - bad, bar_width, bad, x + bar_width / 2)
            a, b, c, d, e, f, g, h, i = (f"{n:.1f}" for n in numbers)
            yield a, b, c, d, label, e, f, g, h, label, i, height - 5, f"{bar.start:{tick}}" if index % every == 0 else ""

    shapes = format_html_join(
        "\n",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#198754"><title>{}</title></rect>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#dc3545"><title>{}</title></rect>'
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#666">{}</text>',
        rects(),
    )
    return format_html(
        '<svg role="img" aria-label="Jobs finished per {}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">'
        '<text x="0" y="10" font-size="10" fill="#666">peak {} per {}</text>{}</svg>',
        per, width, height, width, height, peak, per, shapes,
    )
