"""What the progress column says once a job can no longer move: a failed job never shows a full bar,
and a retrying job says when its next attempt is due, in the list, on its page and in live refreshes."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Job, Status
from tests.jobs import kinds  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"


def row_of(page: str, job: Job) -> str:
    start = page.index(f'data-live-job="{job.pk}"')
    return page[start:page.index("</tr>", start)]


def test_a_failed_job_shows_where_it_stopped_not_a_full_bar(client, acme, alice):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, progress=100, finished_at=timezone.now())
    client.force_login(alice)
    row = row_of(client.get(CHANGELIST).content.decode(), job)
    assert "stopped at 100%" in row and "<progress" not in row
    page = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "stopped at 100%" in page and not re.search(r'<progress max="100" value="100"', page)


def test_a_retrying_job_says_when_its_next_attempt_is_due(client, acme, alice):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    due = timezone.now() + timedelta(hours=2, minutes=40, seconds=30)
    Job.objects.filter(pk=job.pk).update(status=Status.RETRYING, progress=60, run_at=due)
    client.force_login(alice)
    row = row_of(client.get(CHANGELIST).content.decode(), job)
    assert "next attempt in 2\xa0hours, 40\xa0minutes" in row and "<progress" not in row
    assert "UTC" in re.search(r'title="([^"]+)">next attempt', row).group(1)  # the exact time, with its zone
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=1))
    assert "next attempt due now" in client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()


def test_a_running_job_still_shows_its_bar(client, acme, alice):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, progress=40)
    client.force_login(alice)
    assert '<progress max="100" value="40"' in row_of(client.get(CHANGELIST).content.decode(), job)

