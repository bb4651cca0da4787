from __future__ import annotations

import pytest

from jobs import enqueue
from tests.jobs import kinds  # noqa: F401


@pytest.mark.django_db
def test_it_shows_staff_only_their_tenants_jobs(client, acme, globex, alice, charlie):
    mine = enqueue("tests.echo", tenant=acme, payload={"text": "acme-job"})
    theirs = enqueue("tests.echo", tenant=globex, payload={"text": "globex-job"})
    client.force_login(alice)
    page = client.get("/admin/jobs/job/").content.decode()
    assert mine.short_id in page and theirs.short_id not in page
    assert client.get(f"/admin/jobs/job/{theirs.pk}/change/").status_code in (302, 404)
    assert client.get(f"/admin/jobs/job/{mine.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_system_jobs_are_for_superusers_only(client, alice, root):
    system = enqueue("tests.echo", tenant=None, payload={"text": "sys"})
    client.force_login(alice)
    assert system.short_id not in client.get("/admin/jobs/job/").content.decode()
    client.force_login(root)
    assert system.short_id in client.get("/admin/jobs/job/").content.decode()


@pytest.mark.django_db
def test_jobs_cannot_be_added_or_edited_through_a_raw_admin_form(client, root, acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    client.force_login(root)
    assert client.get("/admin/jobs/job/add/").status_code == 403
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    response = client.post(f"/admin/jobs/job/{job.pk}/change/", {"kind": "other"})
    assert response.status_code == 403
    assert client.post(f"/admin/jobs/job/{job.pk}/delete/", {"post": "yes"}).status_code == 403
