"""The request flow from a plain Django view: form, redirect, status, download; and who may see what."""
from __future__ import annotations

import base64
import hashlib
import time

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from jobs.mail.models import OutboundEmail
from jobs.models import Job
from reports.models import Report, ReportState
from reports.services import report_request, report_signed_url
from tests.jobs.helpers import work
from tests.reports.conftest import RANGE

pytestmark = pytest.mark.django_db(transaction=True)


def form(**fields) -> dict:
    data = {"format": "csv", "title": "", "p-start": RANGE["start"], "p-end": RANGE["end"]}
    data.update(fields)
    return data


def test_it_enqueues_from_the_view_redirects_to_status_and_serves_the_file(client, acme, alice, history):
    client.force_login(alice)
    page = client.get(reverse("reports:new", args=["jobs.activity"]))
    assert page.status_code == 200 and b'name="p-start"' in page.content and b'name="p-kind"' in page.content
    response = client.post(reverse("reports:new", args=["jobs.activity"]),
                           form(tenant=acme.pk, format="json", title="November", **{"p-kind": "email.send"}))
    report = Report.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("reports:detail", args=[report.pk])
    assert (report.title, report.format, report.parameters["kind"]) == ("November", "json", "email.send")
    job = Job.objects.get(pk=report.job_id)
    assert (job.kind, job.tenant, job.enqueued_by, job.source) == ("reports.generate", acme, alice, "view")

    status = client.get(reverse("reports:status", args=[report.pk])).json()
    assert (status["state"], status["download_url"], status["finished"]) == ("queued", None, False)
    assert client.get(reverse("reports:download", args=[report.pk])).status_code == 404  # not ready yet

    work()
    status = client.get(reverse("reports:status", args=[report.pk])).json()
    assert (status["state"], status["progress"], status["finished"]) == ("ready", 100, True)
    download = client.get(status["download_url"])
    body = b"".join(download.streaming_content)
    assert download.status_code == 200 and download["Content-Type"] == "application/json"
    assert download["Content-Disposition"].startswith('attachment; filename="november-')
    assert download["Cache-Control"] == "private, no-store"
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert download["Repr-Digest"] == f"sha-256=:{digest}:"
    assert b'"kind":"email.send"' in body
    page = client.get(reverse("reports:detail", args=[report.pk]))
    assert b"Download november-" in page.content and b"reports/status.js" in page.content


def test_bad_input_is_named_on_its_field_and_nothing_is_stored(client, acme, alice):
    client.force_login(alice)
    url = reverse("reports:new", args=["jobs.activity"])
    response = client.post(url, form(tenant=acme.pk, **{"p-start": "2026-11-20", "p-end": "2026-11-01"}))
    assert response.status_code == 400
    assert response.context["parameters"].errors == {"end": ["Must be on or after the start date."]}
    response = client.post(url, form(tenant=acme.pk, format="xlsx", **{"p-start": "yesterday"}))
    assert "format" in response.context["form"].errors and "start" in response.context["parameters"].errors
    response = client.post(url, form(tenant=acme.pk, **{"p-start": "2024-01-01", "p-end": "2026-01-01"}))
    assert response.context["parameters"].errors["end"] == ["The range is 732 days; at most 366 days."]
    assert b"The range is 732 days" in response.content
    assert not Report.objects.exists() and not Job.objects.exists()


def test_the_service_names_bad_fields_too(acme, alice):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        report_request(tenant=acme, user=alice, type="jobs.activity", format="docx", notify=True,
                       parameters={"start": "2026-13-01", "end": "2026-11-02", "colour": "red"}, title="x" * 300)
    assert set(caught.value.message_dict) == {"format", "title", "notify", "parameters.start"}
    with pytest.raises(ValidationError) as caught:
        report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters={**RANGE, "colour": 1})
    assert caught.value.message_dict == {"parameters.colour": ["Unknown parameter."]}
    with pytest.raises(ValidationError) as caught:
        report_request(tenant=acme, user=alice, type="no.such", format="csv")
    assert caught.value.message_dict == {"type": ["Unknown report type 'no.such'."]}
    assert not Report.objects.exists()


def test_another_tenants_report_is_a_404_on_every_door(client, acme, alice, charlie, history):
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    work()
    client.force_login(charlie)
    for name in ("detail", "status", "download"):
        assert client.get(reverse(f"reports:{name}", args=[report.pk])).status_code == 404, name
    listing = client.get(reverse("reports:list"))
    assert str(report.pk).encode() not in listing.content and report.title.encode() not in listing.content
    # Nor can charlie ask for a report of acme's: acme is not a choice, and nothing is stored.
    response = client.post(reverse("reports:new", args=["jobs.audit"]), form(tenant=acme.pk))
    assert response.status_code == 400 and "tenant" in response.context["form"].errors
    assert Report.objects.count() == 1


def test_a_viewer_cannot_export_tenant_data_nor_download_an_export(client, acme, alice, victor, history):
    export = report_request(tenant=acme, user=alice, type="exports.tenant_data", format="csv")
    audit = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    work()
    client.force_login(victor)
    assert client.get(reverse("reports:new", args=["exports.tenant_data"])).status_code == 404
    assert client.get(reverse("reports:download", args=[export.pk])).status_code == 404
    assert client.get(reverse("reports:download", args=[audit.pk])).status_code == 200  # shared in the tenant
    choices = client.get(reverse("reports:choose")).content
    assert b"Job activity" in choices and b"Tenant data export" not in choices


def test_anonymous_visitors_are_sent_to_log_in(client, acme, alice):
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    for url in (reverse("reports:list"), reverse("reports:detail", args=[report.pk]),
                reverse("reports:download", args=[report.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_the_emailed_link_downloads_without_logging_in_until_it_expires(client, acme, alice, history, smtp,
                                                                        settings):
    alice.email = "alice@acme.test"
    alice.save()
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE,
                            notify=True)
    work()  # the report, then its email
    report.refresh_from_db()
    email = OutboundEmail.objects.get(key=f"report-ready:{report.pk}")
    link = next(line for line in email.text.splitlines() if line.startswith("http://testserver/reports/download/"))
    [received] = smtp.to("alice@acme.test")
    assert link in received.message.get_content() and "is ready" in received.message["Subject"]
    path = link.removeprefix("http://testserver")
    response = client.get(path)
    assert response.status_code == 200 and b"actor,action" in b"".join(response.streaming_content)
    assert client.get(path[:-3] + "xyz/").status_code == 404  # tampered
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=settings.REPORTS_LINK_HOURS, minutes=1)):
        assert client.get(path).status_code == 404


def test_a_failed_report_shows_its_error(client, acme, alice, history, settings):
    settings.REPORTS_PDF_TIMEOUT = 0.3
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="pdf", parameters=RANGE)
    work()
    client.force_login(alice)
    status = client.get(reverse("reports:status", args=[report.pk])).json()
    assert (status["state"], status["finished"]) == ("failed", True)
    assert "longer than 0.3 s" in status["error"]


def test_a_cancelled_report_job_fails_the_report(acme, alice):
    from jobs.services import jobs_cancel

    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    jobs_cancel(job_ids=[report.job_id], user=alice)
    report.refresh_from_db()
    assert (report.state, report.error) == (ReportState.FAILED, "Cancelled.")


def test_the_admin_lists_reports_and_adds_through_the_same_flow(client, acme, alice, history):
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    work()
    client.force_login(alice)
    listing = client.get(reverse("admin:reports_report_changelist"))
    assert listing.status_code == 200 and b"Staff audit" in listing.content
    assert reverse("reports:download", args=[report.pk]).encode() in listing.content
    assert client.get(reverse("admin:reports_report_add"))["Location"] == reverse("reports:choose")


def test_the_tenant_admin_action_exports_the_tenants_data(client, acme, globex, alice, history):
    client.force_login(alice)
    response = client.post(reverse("admin:tenants_tenant_changelist"),
                           {"action": "export_data", "_selected_action": [acme.pk, globex.pk]}, follow=True)
    report = Report.objects.get()
    assert (report.tenant, report.type, report.format) == (acme, "exports.tenant_data", "csv")
    assert reverse("reports:detail", args=[report.pk]) in response.content.decode()
    assert Job.objects.get(pk=report.job_id).source == "admin"


def test_a_file_lost_from_storage_is_a_404_not_an_error(client, acme, alice, history):
    from reports.services import report_storage

    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    work()
    report.refresh_from_db()
    report_storage().delete(report.path)
    client.force_login(alice)
    assert client.get(reverse("reports:download", args=[report.pk])).status_code == 404
