"""The jobs list's "N new jobs, show" bar: it counts jobs made since the page was rendered that the page's
own filters and search would show, in the user's tenants only."""
from __future__ import annotations

import pytest

from jobs import enqueue
from jobs.models import Job, Status
from tests.jobs import kinds  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"


def test_it_counts_newer_matching_jobs_of_the_users_tenants_only(client, acme, globex, olga):
    old = enqueue("tests.echo", tenant=acme, payload={"text": "old"})
    client.force_login(olga)
    page = client.get(CHANGELIST, {"status__exact": "queued"})
    assert page.context_data["newest_job_id"] == str(old.pk)
    assert f'data-since="{old.pk}"' in page.content.decode()

    enqueue("tests.echo", tenant=acme, payload={"text": "new"})
    failed = enqueue("tests.echo", tenant=acme, payload={"text": "new, failed"})
    Job.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    enqueue("tests.echo", tenant=globex, payload={"text": "theirs"})

    counted = client.get(f"{CHANGELIST}new/", {"status__exact": "queued", "_since": str(old.pk)}).json()
    assert counted == {"new": 1, "more": False}  # not the failed one, nor globex's
    assert client.get(f"{CHANGELIST}new/", {"_since": str(old.pk)}).json()["new"] == 2
    assert client.get(f"{CHANGELIST}new/", {"q": "failed", "_since": str(old.pk)}).json()["new"] == 1


def test_bad_parameters_count_nothing_rather_than_fail(client, acme, olga):
    client.force_login(olga)
    assert client.get(f"{CHANGELIST}new/", {"_since": "not-an-id"}).json() == {"new": 0}
    assert client.get(f"{CHANGELIST}new/", {"no_such_field__exact": "1"}).json() == {"new": 0}


def test_staff_of_no_tenant_and_anonymous_users_get_no_count(client, drifter):
    assert client.get(f"{CHANGELIST}new/").status_code == 302  # to the login page
    client.force_login(drifter)
    response = client.get(f"{CHANGELIST}new/")
    assert response.status_code == 403


def test_tenant_staff_are_never_offered_the_platforms_own_kinds(client, acme, olga, root):
    client.force_login(olga)
    kinds = client.get(CHANGELIST).context_data["cl"].filter_specs[1].lookup_choices
    names = {name for name, _ in kinds}
    assert "diagnostics.ping" in names and "email.send" in names
    assert not names & {"maintenance.cleanup", "ops.alerts_check", "ops.alert_webhook"}
    client.force_login(root)
    everything = {name for name, _ in client.get(CHANGELIST).context_data["cl"].filter_specs[1].lookup_choices}
    assert {"maintenance.cleanup", "ops.alerts_check"} <= everything
