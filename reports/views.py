"""Reports from a plain Django view: pick a type, fill in its form, get redirected to a status page
that follows the job's progress and offers the file when it is ready.

The view only coordinates: a service stores the request and enqueues the job in one transaction;
the job does the work. Copy this shape for any view that starts background work.
"""
from __future__ import annotations

import base64

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from reports.forms import ReportRequestForm, add_service_errors
from reports.models import Report, ReportState
from reports.registry import get_report_type, report_type_title
from reports.selectors import report_list_for_user, report_types_for_user
from reports.services import report_from_signed, report_request, report_storage
from tenants.selectors import tenant_list_with_role


@login_required
def report_list(request: HttpRequest) -> HttpResponse:
    reports = report_list_for_user(user=request.user)[:100]
    return render(request, "reports/list.html", {"reports": reports,
                                                 "types": report_types_for_user(user=request.user)})


@login_required
def report_choose(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/choose.html", {"types": report_types_for_user(user=request.user)})


@login_required
def report_new(request: HttpRequest, type_name: str) -> HttpResponse:
    try:
        report_type = get_report_type(type_name)
    except ValidationError:
        raise Http404("No such report type.") from None
    tenants = tenant_list_with_role(user=request.user, role=report_type.role)
    if not tenants.exists():
        raise Http404("No such report type.")
    data = request.POST if request.method == "POST" else None
    form = ReportRequestForm(data, report_type=report_type, tenants=tenants, user=request.user,
                             initial={"format": report_type.formats[0]})
    parameters = report_type.parameters_form(data, prefix="p")
    if request.method == "POST" and form.is_valid() and parameters.is_valid():
        try:
            report = report_request(tenant=form.cleaned_data["tenant"], user=request.user, type=report_type.name,
                                    format=form.cleaned_data["format"], parameters=parameters.cleaned_data,
                                    title=form.cleaned_data["title"], notify=form.cleaned_data["notify"])
        except ValidationError as exc:
            add_service_errors(exc, form, parameters)
        except PermissionDenied:
            form.add_error("tenant", "You may not request this report for that tenant.")
        else:
            return redirect("reports:detail", pk=report.pk)
    return render(request, "reports/new.html", {"report_type": report_type, "form": form, "parameters": parameters},
                  status=400 if request.method == "POST" else 200)


@login_required
def report_detail(request: HttpRequest, pk) -> HttpResponse:
    report = get_object_or_404(report_list_for_user(user=request.user), pk=pk)
    return render(request, "reports/detail.html", {"report": report, "status": report_status_payload(report),
                                                   "type_title": report_type_title(report.type),
                                                   "parameters": _described(report)})


def _described(report: Report) -> list[tuple[str, str]]:
    try:
        report_type = get_report_type(report.type)
        return report_type.describe_parameters(report_type.typed_parameters(report.parameters))
    except ValidationError:  # a type no longer registered, or changed since: show what was stored
        return [(name, str(value)) for name, value in report.parameters.items()]


@never_cache
@login_required
@require_GET
def report_status(request: HttpRequest, pk) -> JsonResponse:
    report = get_object_or_404(report_list_for_user(user=request.user), pk=pk)
    return JsonResponse(report_status_payload(report))


def report_status_payload(report: Report) -> dict:
    """What the status page shows and polls: the report's state, its job's progress, the file."""
    job = report.job
    progress = 100 if report.state == ReportState.READY else (job.progress if job else 0)
    message = job.progress_message if job and not report.is_finished else ""
    if job and job.status == "retrying" and report.state == ReportState.RUNNING:
        message = f"Retrying after an error: {job.last_error.splitlines()[0] if job.last_error else 'unknown'}"
    payload = {"state": report.state, "state_label": report.get_state_display(), "progress": progress,
               "message": message, "error": report.error, "finished": report.is_finished,
               "download_url": None, "details": "", "size": report.size, "rows": report.rows, "filename": report.filename,
               "expires_at": report.expires_at.isoformat() if report.expires_at else None}
    if report.is_ready:
        payload["download_url"] = reverse("reports:download", args=[report.pk])
        payload["details"] = (f"{report.rows:,} rows, {filesizeformat(report.size)}; available until "
                              f"{date_format(localtime(report.expires_at), 'Y-m-d H:i')}")
    return payload


@login_required
def report_download(request: HttpRequest, pk) -> FileResponse:
    report = get_object_or_404(report_list_for_user(user=request.user), pk=pk)
    return _file_response(report)


@never_cache
def report_download_signed(request: HttpRequest, token: str) -> HttpResponse:
    report = report_from_signed(token=token)
    if report is not None:
        try:
            return _file_response(report)
        except Http404:
            pass  # the file left storage since: a dead link like any other
    # One page for every dead link, whatever the cause: it must not tell a report that exists (another
    # tenant's, or one whose requester left) from one that never did.
    return render(request, "reports/link_gone.html", status=404)


def _file_response(report: Report) -> FileResponse:
    if not report.is_ready:
        raise Http404("The file is not ready or has expired.")
    try:
        stored = report_storage().open(report.path, "rb")
    except FileNotFoundError:
        raise Http404("The file is gone from storage.") from None
    response = FileResponse(stored, as_attachment=True, filename=report.filename, content_type=report.content_type)
    response["Cache-Control"] = "private, no-store"
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(report.checksum)).decode()}:"
    return response
