"""A running job's estimate of the time it still needs, from its progress rate: in the admin and the API."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from jobs import enqueue
from jobs.models import Job, Status
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)

CHANGELIST = "/admin/jobs/job/"


def row_of(page: str, job: Job) -> str:
    start = page.index(f'data-live-job="{job.pk}"')
    return page[start:page.index("</tr>", start)]


def test_a_running_job_says_how_long_it_still_needs_at_its_rate_so_far(client, acme, alice, make_token):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, progress=25,
                                         started_at=timezone.now() - timedelta(minutes=1))
    job.refresh_from_db()
    assert timedelta(minutes=3) <= job.time_left() <= timedelta(minutes=3, seconds=15)
    client.force_login(alice)
    assert "<small>about 3 min left</small>" in row_of(client.get(CHANGELIST).content.decode(), job)
    token = make_token()[1]
    detail = client.get(f"/api/v1/jobs/{job.pk}", headers={"Authorization": f"Bearer {token}"}).json()
    assert 180 <= detail["eta_seconds"] <= 195  # three times the time since it started, read a little later
    Job.objects.filter(pk=job.pk).update(progress=0)  # no progress yet: nothing to tell it by
    assert client.get(f"/api/v1/jobs/{job.pk}", headers={"Authorization": f"Bearer {token}"}).json()[
        "eta_seconds"] is None
