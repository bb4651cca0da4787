"""Writes for reports: request one (stored and enqueued together), generate its file, expire files."""
from __future__ import annotations

import hashlib
import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.text import slugify

from jobs import enqueue
from jobs.mail.services import email_send
from jobs.models import Source
from reports.formats import write_report
from reports.models import Report, ReportState
from reports.registry import Table, get_report_type
from reports.selectors import report_list_for_user
from tenants.selectors import user_has_role

logger = logging.getLogger(__name__)

STORAGE_ALIAS = "reports"
SIGNING_SALT = "reports.download"
RESTARTABLE = (ReportState.QUEUED, ReportState.RUNNING, ReportState.FAILED)


def report_storage() -> Storage:
    return storages[STORAGE_ALIAS]


def report_request(
    *,
    tenant,
    user,
    type: str,
    format: str,
    parameters: Mapping[str, Any] | None = None,
    title: str = "",
    notify: bool = False,
    source: str = Source.VIEW,
) -> Report:
    """Store a report request and the job that generates it, in one transaction.

    Raises ValidationError naming the field (`type`, `format`, `title`, `notify`, `parameters.<name>`)
    and PermissionDenied when `user` lacks the type's role in `tenant`; nothing is stored then.
    """
    report_type = get_report_type(type)
    if not user_has_role(user=user, role=report_type.role, tenant=tenant):
        raise PermissionDenied(f"{report_type.title} needs the {report_type.role} role in {tenant}.")
    errors: dict[str, list[str]] = {}
    if format not in report_type.formats:
        errors["format"] = [f"{report_type.title} comes as {', '.join(report_type.formats)}; not {format!r}."]
    title = " ".join(str(title or "").split()) or report_type.title
    if len(title) > 200:
        errors["title"] = [f"Is {len(title)} characters; at most 200."]
    if notify and not getattr(user, "email", ""):
        errors["notify"] = ["Your account has no email address to send the link to."]
    try:
        stored = report_type.clean_parameters(parameters or {})
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        report = Report.objects.create(tenant=tenant, type=report_type.name, format=format, title=title,
                                       parameters=stored, notify=notify, requested_by=user)
        report.job = enqueue(report_type.kind, tenant=tenant, payload={"report": str(report.pk)}, user=user,
                             source=source)
        report.save(update_fields=["job"])
    return report


def report_generate(*, report: Report, progress: Callable[[float, str], None]) -> dict[str, Any]:
    """Build the report's tables, write them in its format to a scratch file, store the file under the
    tenant's folder and mark the report ready (emailing the link if asked). Safe to run again."""
    report_type = get_report_type(report.type)
    now = timezone.now()
    if not Report.objects.filter(pk=report.pk, state__in=RESTARTABLE).update(
            state=ReportState.RUNNING, started_at=now, error=""):
        return {"skipped": f"the report is already {Report.objects.get(pk=report.pk).state}"}
    params = report_type.typed_parameters(report.parameters)
    progress(1, "Reading data")
    data = report_type.build(tenant=report.tenant, params=params)
    meta = {"type": report_type.name, "title": report.title, "tenant": report.tenant.name,
            "generated_at": now, "parameters": report.parameters, "report": str(report.pk)}
    with tempfile.TemporaryFile(dir=settings.REPORTS_SCRATCH_DIR) as scratch:
        written = write_report(data, fmt=report.format, out=scratch, meta=meta,
                               described=report_type.describe_parameters(params),
                               on_rows=_TableProgress(data.tables, progress))
        size = scratch.tell()
        scratch.seek(0)
        checksum = hashlib.file_digest(scratch, "sha256").hexdigest()
        scratch.seek(0)
        progress(97, "Storing the file")
        path = report_storage().save(_storage_name(report, written.extension), File(scratch))
    finished = timezone.now()
    fields = {"state": ReportState.READY, "path": path, "size": size, "rows": written.rows, "checksum": checksum,
              "content_type": written.content_type, "filename": _download_name(report, written.extension),
              "finished_at": finished, "expires_at": finished + timedelta(days=settings.REPORTS_RETENTION_DAYS)}
    with transaction.atomic():
        updated = Report.objects.filter(pk=report.pk, state=ReportState.RUNNING).update(**fields)
        if updated:
            for name, value in fields.items():
                setattr(report, name, value)
            if report.notify:
                _email_link(report)
    if not updated:  # cancelled meanwhile: the file has no report to belong to
        report_storage().delete(path)
        return {"skipped": "the report was no longer running"}
    return {"rows": written.rows, "bytes": size, "sha256": checksum, "file": report.filename}


class _TableProgress:
    """Progress by table: each table an equal share of 2-95 %, within it rows written of rows expected."""

    def __init__(self, tables: list[Table], progress: Callable[[float, str], None]) -> None:
        self.tables, self.progress, self.expected = tables, progress, {}

    def __call__(self, index: int, rows: int) -> None:
        table = self.tables[index]
        if index not in self.expected:
            self.expected[index] = table.count() if table.count else None
        expected = self.expected[index]
        fraction = min(rows / expected, 1.0) if expected else 0.0
        of = f" of {expected:,}" if expected is not None else ""
        where = f" (table {index + 1} of {len(self.tables)})" if len(self.tables) > 1 else ""
        self.progress(2 + 93 * (index + fraction) / len(self.tables), f"{table.title}: {rows:,}{of} rows{where}")


def report_mark_ended(*, report_id: str, error: str) -> int:
    """The report's job failed for good or was cancelled: say so on the report (1 if it changed)."""
    return Report.objects.filter(pk=report_id, state__in=(ReportState.QUEUED, ReportState.RUNNING)).update(
        state=ReportState.FAILED, error=error[:2000], finished_at=timezone.now())


def report_delete_expired(now: datetime) -> dict[str, int]:
    """Delete the files of reports past their expiry (the rows stay, marked expired, as history), and
    the rows of reports that ended longer ago than any retention; counts per tenant slug."""
    storage, deleted = report_storage(), Counter()
    expired = Report.objects.filter(state=ReportState.READY, expires_at__lte=now).select_related("tenant")
    for report in expired.iterator(chunk_size=500):
        try:
            storage.delete(report.path)
        except OSError:
            logger.exception("could not delete the expired report file %s", report.path)
            continue
        Report.objects.filter(pk=report.pk, state=ReportState.READY).update(state=ReportState.EXPIRED, path="")
        deleted[report.tenant.slug] += 1
    days = max(settings.JOBS_RETENTION_SUCCEEDED_DAYS, settings.JOBS_RETENTION_FAILED_DAYS)
    Report.objects.filter(state__in=(ReportState.EXPIRED, ReportState.FAILED),
                          created_at__lt=now - timedelta(days=days + settings.REPORTS_RETENTION_DAYS)).delete()
    return dict(deleted)


def report_signed_url(*, report: Report, absolute: bool = True) -> str:
    """A download link that works without logging in while `report_from_signed` finds it live: for
    REPORTS_LINK_HOURS, until the file expires, and while its requester may still see the report."""
    token = signing.dumps(str(report.pk), salt=SIGNING_SALT)
    path = reverse("reports:signed_download", args=[token])
    return settings.SITE_URL.rstrip("/") + path if absolute else path


def report_from_signed(*, token: str) -> Report | None:
    """The ready report a signed link names, or None: the link is forged or older than
    REPORTS_LINK_HOURS, the report is gone or its file expired, or its requester may no longer see it.

    The link stands in for the requester's login, so it opens no more than they could today: leaving
    the tenant, being deactivated (superusers too) or losing the role the report's type needs ends it.
    """
    try:
        report_id = signing.loads(token, salt=SIGNING_SALT, max_age=settings.REPORTS_LINK_HOURS * 3600)
    except signing.BadSignature:
        return None
    report = Report.objects.filter(pk=report_id).select_related("tenant", "requested_by").first()
    if report is None or not report.is_ready:
        return None
    requester = report.requested_by
    if requester is None or not requester.is_active:
        return None
    return report if report_list_for_user(user=requester).filter(pk=report.pk).exists() else None


def _email_link(report: Report) -> None:
    user = report.requested_by
    if user is None or not user.email:
        return
    email_send(tenant=report.tenant, to=[user.email], template="report_ready", key=f"report-ready:{report.pk}",
               context={"report": report, "link": report_signed_url(report=report),
                        "link_hours": settings.REPORTS_LINK_HOURS}, source=Source.JOB)


def _storage_name(report: Report, extension: str) -> str:
    # Every tenant's files under its own folder: per-tenant lifecycle rules and bucket policies apply.
    return f"tenants/{report.tenant_id}/reports/{report.created_at:%Y/%m}/{report.pk}.{extension}"


def _download_name(report: Report, extension: str) -> str:
    stem = slugify(strip_tags(report.title))[:80] or report.type.replace(".", "-")
    return f"{stem}-{report.created_at:%Y%m%d-%H%M}.{extension}"
