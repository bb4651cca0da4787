"""The job kinds that generate reports and exports."""
from __future__ import annotations

from django.core.exceptions import ValidationError

from jobs import GiveUp, job_kind


def _generate(ctx, report: str) -> dict:
    from reports.models import Report
    from reports.pdf import PdfRenderError
    from reports.services import report_generate

    stored = Report.objects.select_related("tenant", "requested_by").filter(pk=report).first()
    if stored is None:
        raise GiveUp(f"Report {report} no longer exists.")
    try:
        return report_generate(report=stored, progress=ctx.progress)
    except ValidationError as exc:  # the type or its parameters are gone or changed: a retry cannot help
        raise GiveUp(f"The report's parameters are no longer valid: {exc.messages}") from None
    except PdfRenderError as exc:  # over its time or memory bound: it would be again
        raise GiveUp(str(exc)) from None


@job_kind("reports.generate", queue="default", max_attempts=3, timeout=300, backoff=30.0)
def generate(ctx, *, report: str) -> dict:
    """Generate one requested report's file (PDF, CSV, JSON or JSON Lines) and store it."""
    return _generate(ctx, report)


@job_kind("exports.tenant_data", queue="low", max_attempts=2, timeout=600, backoff=60.0)
def tenant_data(ctx, *, report: str) -> dict:
    """Export a tenant's data (jobs with attempts, memberships, webhook endpoints without secrets,
    deliveries) as a zip of CSV or JSON Lines files."""
    return _generate(ctx, report)
