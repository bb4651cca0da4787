"""Expired report files are deleted by the daily retention cleanup; the rows stay as history for a while."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.maintenance import retention_cleanup
from reports.models import Report, ReportState
from reports.services import report_request, report_storage
from tests.jobs.helpers import work
from tests.reports.conftest import RANGE

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_cleanup_deletes_expired_files_and_keeps_the_rest(client, acme, alice, history, settings, report_files):
    old = report_request(tenant=acme, user=alice, type="jobs.audit", format="csv", parameters=RANGE)
    fresh = report_request(tenant=acme, user=alice, type="jobs.audit", format="json", parameters=RANGE)
    work()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.path.startswith(f"tenants/{acme.pk}/reports/") and (report_files / old.path).is_file()
    Report.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timezone.timedelta(minutes=1))

    result = retention_cleanup()

    assert result["reports"] == {"acme": 1}
    old.refresh_from_db()
    assert (old.state, old.path) == (ReportState.EXPIRED, "")
    assert not report_storage().exists(f"tenants/{acme.pk}/reports/{old.created_at:%Y/%m}/{old.pk}.csv")
    assert report_storage().exists(fresh.path)
    client.force_login(alice)
    assert client.get(reverse("reports:download", args=[old.pk])).status_code == 404
    assert client.get(reverse("reports:download", args=[fresh.pk])).status_code == 200

    # Long after, the expired row goes too; the other report's file expires by then, its row stays.
    later = timezone.now() + timezone.timedelta(days=settings.REPORTS_RETENTION_DAYS + 1)
    Report.objects.filter(pk=old.pk).update(created_at=timezone.now() - timezone.timedelta(days=400))
    retention_cleanup(now=later)
    assert not Report.objects.filter(pk=old.pk).exists()
    fresh.refresh_from_db()
    assert (fresh.state, fresh.path) == (ReportState.EXPIRED, "")
