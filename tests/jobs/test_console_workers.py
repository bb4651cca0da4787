"""The workers page with a real rqworker: who runs what, and a superuser's stop after the current job."""
from __future__ import annotations

import pytest
from django.test import Client
from rq import Worker

from jobs import enqueue, transport
from jobs.models import AuditAction, AuditEvent, AuditState, Status
from tests.jobs.helpers import status_of
from tests.support import FAST_ENGINE_ENV, Process, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

URL = "/admin/jobs/job/workers/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_workers_page_shows_the_running_job_to_whom_may_see_it_and_a_superuser_stops_the_worker(
        acme, root, alice, charlie, private_redis, processes):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 3, "steps": 3})
    worker = Process("rqworker", "high", "default", redis_url=private_redis.url, env=FAST_ENGINE_ENV)
    processes.append(worker)
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=30, what="the job to start")
    [name] = [w.name for w in Worker.all(connection=transport.get_connection())]

    page = logged_in(root).get(URL).content.decode()
    assert f'data-worker="{name}"' in page and f"/admin/jobs/job/{job.pk}/change/" in page
    assert "high, default" in page and 'data-stop-worker="' in page
    assert f"/admin/jobs/job/{job.pk}/change/" in logged_in(alice).get(URL).content.decode()
    other = logged_in(charlie).get(URL).content.decode()  # globex's operator: busy, but with what is not his to know
    assert "a job of another tenant" in other and str(job.pk) not in other and "data-stop-worker" not in other

    refused = logged_in(alice).post(URL, {"worker": name})
    assert refused.status_code == 403 and "Only superusers stop workers" in refused.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.WORKER_STOP).exists()

    response = logged_in(root).post(URL, {"worker": name, "reason": "host drain"}, follow=True)
    assert "Asked to stop after its current job." in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.WORKER_STOP)
    assert (event.actor, event.target, event.reason, event.done) == (root, f"worker {name}", "host drain", 1)
    # It finishes the job it runs, records it, and leaves.
    wait_for(lambda: worker.popen.poll() is not None, timeout=30, what="the worker to exit")
    assert status_of(job) == Status.SUCCEEDED
    assert name not in {w.name for w in Worker.all(connection=transport.get_connection())}
    assert "No worker is running." in logged_in(root).get(URL).content.decode()


def test_stopping_a_worker_that_is_not_there_says_so_and_is_audited(root, private_redis):
    response = logged_in(root).post(URL, {"worker": "ghost"}, follow=True)
    assert "Stop worker ghost: No such worker is running." in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.WORKER_STOP)
    assert (event.state, event.done) == (AuditState.FAILED, 0)
