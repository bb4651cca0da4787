"""The staff dashboard at the top of the admin's home page (templates/admin/index.html)."""
from __future__ import annotations

from django import template
from django.db.models import Count
from django.utils import timezone

from jobs import selectors, stats
from jobs.admin.queues import throughput_svg
from jobs.models import UNFINISHED, Status
from tenants.models import Role
from tenants.selectors import memberships_for_user, tenant_ids_with_role

register = template.Library()


@register.inclusion_tag("admin/jobs/dashboard.html", takes_context=True)
def jobs_dashboard(context) -> dict:
    request = context["request"]
    user = request.user
    if not (user.is_superuser or tenant_ids_with_role(user=user, role=Role.VIEWER)):
        return {"shown": False}
    now = timezone.now()
    figures = stats.dashboard_figures(user=user, range_key=request.GET.get("range", "24h"), now=now)
    waiting = dict(selectors.job_list_for_user(user=user).filter(status__in=UNFINISHED).values_list("status")
                   .annotate(n=Count("id")).order_by())
    return {
        "shown": True,
        "user": user,
        "memberships": memberships_for_user(user=user),
        "now": now,
        "figures": figures,
        "ranges": stats.RANGES.values(),
        "statuses": [(status, status.label, waiting.get(status, 0)) for status in UNFINISHED],
        "total_row": _row("all kinds", figures.total),
        "kind_rows": [_row(kind, kind_figures) for kind, kind_figures in figures.by_kind],
        "chart": throughput_svg(figures.bars, figures.range.step),
        "failed_status": Status.FAILED,
        "succeeded_status": Status.SUCCEEDED,
    }


def _row(kind: str, figures: stats.Figures) -> dict:
    rate = figures.failure_rate
    return {
        "kind": kind, "succeeded": figures.succeeded, "failed": figures.failed,
        "failure_rate": "-" if rate is None else f"{rate:.1%}",
        **{f"{which}_{q}": stats.format_seconds(figures.percentile(which, fraction))
           for which in ("wait", "run") for q, fraction in (("p50", 0.5), ("p95", 0.95))},
    }
