"""Roles: viewer reads, operator retries/cancels/stops, admin also deletes and cleans. The admin hides
what a role may not do and refuses it when forced."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs import enqueue
from jobs.models import AuditEvent, AuditState, Job, Status
from tenants.models import Membership, Role
from tests.jobs import kinds  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"


def member(username: str, **roles):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    for tenant, role in roles.items():
        Membership.objects.create(user=user, tenant_id=tenant, role=role)
    return user


def failed(tenant) -> Job:
    job = enqueue("tests.echo", tenant=tenant, payload={"text": "f"})
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, finished_at=timezone.now())
    return job


def test_a_viewer_sees_jobs_but_no_action_and_forcing_one_changes_nothing(client, acme):
    viewer = member("vera", **{str(acme.pk): Role.VIEWER})
    job = failed(acme)
    client.force_login(viewer)
    listing = client.get(CHANGELIST).content.decode()
    assert job.short_id in listing and 'name="action"' not in listing
    detail = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "data-job-action" not in detail
    client.post(CHANGELIST, {"action": "retry_jobs", "index": 0, "_selected_action": [str(job.pk)]})
    assert client.post(f"{CHANGELIST}{job.pk}/act/retry/").status_code == 403
    assert Job.objects.get(pk=job.pk).status == Status.FAILED and not AuditEvent.objects.exists()


def test_an_operator_retries_but_may_not_delete(client, acme):
    operator = member("otto", **{str(acme.pk): Role.OPERATOR})
    job = failed(acme)
    client.force_login(operator)
    listing = client.get(CHANGELIST).content.decode()
    assert 'value="retry_jobs"' in listing and 'value="delete_jobs"' not in listing
    client.post(CHANGELIST, {"action": "delete_jobs", "index": 0, "confirm": "1", "_selected_action": [str(job.pk)]})
    assert client.post(f"{CHANGELIST}{job.pk}/act/delete/").status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()
    client.post(f"{CHANGELIST}{job.pk}/act/retry/")
    assert Job.objects.get(pk=job.pk).status in (Status.PENDING, Status.QUEUED)


def test_a_tenant_admin_deletes_finished_records(client, acme, alice):
    job = failed(acme)
    client.force_login(alice)
    assert client.get(f"{CHANGELIST}{job.pk}/act/delete/").status_code == 200  # asks first
    client.post(f"{CHANGELIST}{job.pk}/act/delete/", {"reason": "test data"})
    assert not Job.objects.filter(pk=job.pk).exists()
    assert AuditEvent.objects.get().reason == "test data"


def test_a_mixed_selection_acts_where_the_role_allows_and_counts_the_rest_as_refused(client, acme, globex):
    mixed = member("mia", **{str(acme.pk): Role.OPERATOR, str(globex.pk): Role.VIEWER})
    mine, viewed = failed(acme), failed(globex)
    client.force_login(mixed)
    client.post(CHANGELIST, {"action": "retry_jobs", "index": 0,
                             "_selected_action": [str(mine.pk), str(viewed.pk)]})
    assert Job.objects.get(pk=mine.pk).status in (Status.PENDING, Status.QUEUED)
    assert Job.objects.get(pk=viewed.pk).status == Status.FAILED
    event = AuditEvent.objects.get()
    assert (event.done, event.refused, event.state) == (1, 1, AuditState.PARTIAL)
    assert "refused" in event.outcome
