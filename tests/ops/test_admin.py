"""The incident list: read-only, for superusers; tenant staff do not see it at all (it is no tenant's data)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.ops.models import Incident

pytestmark = pytest.mark.django_db

LIST = "/admin/ops/incident/"


@pytest.fixture
def incidents() -> tuple[Incident, Incident]:
    now = timezone.now()
    resolved = Incident.objects.create(check_name="failures", summary="150 job(s) failed in the last hour",
                                       opened_at=now - timedelta(hours=2), resolved_at=now - timedelta(hours=1),
                                       resolution="3 job(s) failed in the last hour.")
    open_ = Incident.objects.create(check_name="waiting", summary="12000 job(s) waiting", opened_at=now)
    return resolved, open_


def test_it_lists_incidents_read_only_for_superusers(client, incidents, root):
    resolved, open_ = incidents
    client.force_login(root)
    listing = client.get(LIST).content.decode()
    assert "150 job(s) failed in the last hour" in listing and "12000 job(s) waiting" in listing
    assert "1 h 0 min" in listing and "so far" in listing
    assert client.get(LIST, {"state": "open"}).context["cl"].result_count == 1
    page = client.get(f"{LIST}{resolved.pk}/change/")
    assert page.status_code == 200 and "3 job(s) failed in the last hour." in page.content.decode()
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{open_.pk}/change/", {"summary": "edited"}).status_code == 403
    assert client.post(f"{LIST}{open_.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Incident.objects.get(pk=open_.pk).summary == "12000 job(s) waiting"
    assert "ops" in [app["app_label"] for app in client.get("/admin/").context["app_list"]]


def test_it_hides_incidents_from_staff_who_are_not_superusers(client, incidents, alice):
    client.force_login(alice)
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{incidents[1].pk}/change/").status_code == 403
    assert "ops" not in [app["app_label"] for app in client.get("/admin/").context["app_list"]]
    assert "12000 job(s) waiting" not in client.get("/admin/").content.decode()
