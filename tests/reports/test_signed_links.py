"""The "report ready" email's link: it downloads the file without logging in, and only while the report
and its file are kept, the link is young, and its requester may still see the report. Every dead link
gets the same 404 page, so a link says nothing about whether a report (another tenant's) exists."""
from __future__ import annotations

import uuid

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs.mail.models import OutboundEmail
from jobs.maintenance import retention_cleanup
from reports.models import Report
from reports.services import report_request, report_signed_url, report_storage
from tenants.models import Membership, Role
from tests.jobs.helpers import work
from tests.reports.conftest import RANGE

pytestmark = pytest.mark.django_db(transaction=True)


def emailed(*, tenant, user, type: str = "jobs.audit") -> tuple[Report, str]:
    """A report asked for with "email me", made, and the path of the link its email carries."""
    user.email = f"{user.get_username()}@{tenant.slug}.test"
    user.save()
    report = report_request(tenant=tenant, user=user, type=type, format="csv", notify=True,
                            parameters=RANGE if type == "jobs.audit" else {})
    work()  # the report, then its email
    report.refresh_from_db()
    text = OutboundEmail.objects.get(key=f"report-ready:{report.pk}").text
    link = next(line for line in text.splitlines() if line.startswith("http://testserver/reports/download/"))
    return report, link.removeprefix("http://testserver")


def assert_dead(response) -> bytes:
    assert response.status_code == 404, response.status_code
    assert not getattr(response, "streaming", False)  # a page, never the file
    assert b"no longer works" in response.content
    return response.content


@pytest.fixture
def link(acme, alice, history, smtp) -> tuple[Report, str]:
    return emailed(tenant=acme, user=alice)


def test_it_serves_the_file_from_the_emailed_link_without_logging_in(client, link):
    _, path = link
    response = client.get(path)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"].startswith('attachment; filename="staff-audit-')
    assert b"actor,action" in b"".join(response.streaming_content)


def test_it_refuses_the_link_once_the_report_is_deleted(client, link):
    report, path = link
    Report.objects.filter(pk=report.pk).delete()
    assert_dead(client.get(path))


def test_it_refuses_the_link_once_the_file_is_gone_from_storage(client, link):
    report, path = link
    report_storage().delete(report.path)
    assert_dead(client.get(path))


def test_it_refuses_the_link_after_REPORTS_LINK_HOURS(client, link, settings):
    _, path = link
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=settings.REPORTS_LINK_HOURS, minutes=1)):
        assert_dead(client.get(path))


def test_it_refuses_the_link_once_the_file_expires_though_the_link_is_young(client, link, settings):
    report, path = link
    settings.REPORTS_LINK_HOURS = 24 * 365
    Report.objects.filter(pk=report.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert_dead(client.get(path))  # expired, not yet cleaned up
    retention_cleanup()
    assert_dead(client.get(path))


def test_it_refuses_the_link_once_the_requester_leaves_the_tenant(client, link, alice):
    report, path = link
    Membership.objects.filter(user=alice, tenant=report.tenant).delete()
    assert_dead(client.get(path))


@pytest.mark.parametrize("superuser", [False, True])
def test_it_refuses_the_link_of_a_deactivated_requester(client, link, alice, superuser):
    _, path = link
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False, is_superuser=superuser)
    assert_dead(client.get(path))


def test_it_refuses_the_link_once_the_requester_is_deleted(client, link, alice):
    _, path = link
    alice.delete()
    assert_dead(client.get(path))


def test_it_refuses_an_export_link_once_the_requester_is_no_longer_an_admin(client, acme, alice, history, smtp):
    _, path = emailed(tenant=acme, user=alice, type="exports.tenant_data")
    assert client.get(path).status_code == 200
    Membership.objects.filter(user=alice, tenant=acme).update(role=Role.OPERATOR)
    assert_dead(client.get(path))


def test_it_answers_every_dead_link_alike_whoever_asks(client, link, alice, globex, charlie):
    _, path = link
    theirs, their_path = emailed(tenant=globex, user=charlie)
    Membership.objects.filter(user=charlie).delete()
    never = report_signed_url(report=Report(pk=uuid.uuid4()), absolute=False)
    forged = path[:-4] + "xyz/"
    pages = {name: assert_dead(client.get(url)) for name, url in
             [("left", their_path), ("never existed", never), ("forged", forged)]}
    assert len(set(pages.values())) == 1, pages
    assert theirs.title.encode() not in pages["left"] and b"Globex" not in pages["left"]
    client.force_login(alice)
    assert client.get(their_path).status_code == client.get(never).status_code == 404
