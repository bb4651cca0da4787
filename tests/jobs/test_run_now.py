"""Run now (Sidekiq's and Bull Board's 'promote'): a scheduled or retrying job is handed over at once,
audited, by operators of its tenant only; a chain's waiting step is left alone."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue, transport
from jobs.models import AuditAction, AuditEvent, Job, Status, Trigger
from tests.jobs import kinds  # noqa: F401
from tests.jobs.helpers import status_of, work

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/jobs/job/"


def later(tenant, **fields) -> Job:
    job = enqueue("tests.echo", tenant=tenant, payload={"text": "later"}, run_at=timezone.now() + timedelta(hours=3))
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
    return job


def test_an_operator_runs_a_scheduled_job_now_from_its_page(client, acme, olga):
    job = later(acme)
    assert status_of(job) == Status.SCHEDULED
    client.force_login(olga)
    page = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert 'data-job-action="run_now"' in page
    response = client.post(f"/admin/jobs/job/{job.pk}/act/run_now/", {"reason": "customer is waiting"}, follow=True)
    assert f"Run now: 1 job queued to run now (job {job.short_id}, tests.echo)." in [
        str(message) for message in response.context["messages"]]
    assert status_of(job) == Status.QUEUED and str(job.pk) in transport.get_queue("high").job_ids
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.reason, event.done) == (AuditAction.RUN_NOW, olga,
                                                                   "customer is waiting", 1)
    work()
    attempt = Job.objects.get(pk=job.pk).attempt_set.get()
    assert attempt.outcome == "succeeded" and attempt.triggered_by == olga


def test_a_retrying_jobs_next_attempt_comes_forward_as_a_manual_one(client, acme, olga):
    job = later(acme, status=Status.RETRYING, attempts=1)
    client.force_login(olga)
    client.post(CHANGELIST, {"action": "run_now_jobs", "index": 0, "_selected_action": [str(job.pk)]})
    assert Job.objects.get(pk=job.pk).next_trigger == Trigger.MANUAL
    assert status_of(job) == Status.QUEUED


def test_a_viewer_may_not_and_another_tenants_operator_gets_no_job(client, acme, victor, charlie):
    job = later(acme)
    client.force_login(victor)
    assert 'data-job-action="run_now"' not in client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert client.post(f"/admin/jobs/job/{job.pk}/act/run_now/", {"reason": ""}).status_code == 403
    client.force_login(charlie)
    assert client.post(f"/admin/jobs/job/{job.pk}/act/run_now/", {"reason": ""}).status_code == 404
    assert status_of(job) == Status.SCHEDULED


def test_a_chains_waiting_step_and_finished_jobs_are_skipped(client, acme, olga):
    waiting_step = later(acme, run_at=None)
    done = later(acme, status=Status.SUCCEEDED)
    client.force_login(olga)
    assert 'data-job-action="run_now"' not in client.get(f"{CHANGELIST}{waiting_step.pk}/change/").content.decode()
    client.post(CHANGELIST, {"action": "run_now_jobs", "index": 0,
                             "_selected_action": [str(waiting_step.pk), str(done.pk)]})
    event = AuditEvent.objects.get()
    assert (event.done, event.skipped) == (0, 2)
    assert status_of(waiting_step) == Status.SCHEDULED and status_of(done) == Status.SUCCEEDED
