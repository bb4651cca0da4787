"""enqueue() returns once its INSERT commits and a thread of the process hands the job to Redis
(JOBS_PUSH_IN_BACKGROUND, the default): the jobs arrive in order, a Redis outage leaves them to the relay,
a process that enqueues and exits at once still delivers, and a forked child does not inherit a held lock."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobs import enqueue, enqueue_many, pusher, relay, transport
from jobs.models import Job, Status
from tenants.models import Tenant
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)
from tests.support import ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)  # real commits: the push follows each one


@pytest.fixture
def in_background(settings):
    settings.JOBS_PUSH_IN_BACKGROUND = True


def in_redis() -> list[str]:
    return transport.get_queue("high").job_ids


def test_jobs_reach_redis_from_the_thread_in_the_order_they_were_enqueued(acme, in_background):
    Tenant.objects.filter(pk=acme.pk).update(concurrency_limit=0)  # none held back by the tenant's limit
    relay.forget_tenant_load()
    jobs = [enqueue("tests.echo", tenant=acme, payload={"text": str(n)}) for n in range(30)]
    jobs += enqueue_many("tests.echo", tenant=acme, payloads=[{"text": "bulk"}] * 10)
    assert {job.status for job in jobs} == {Status.QUEUED}  # the record says so from the commit on
    assert pusher.flush(5)
    assert in_redis() == [str(job.pk) for job in jobs]


def test_a_redis_outage_leaves_the_jobs_pending_for_the_relay(acme, in_background, private_redis):
    private_redis.stop()
    try:
        job = enqueue("tests.echo", tenant=acme, payload={"text": "while Redis is down"})
        assert pusher.flush(15)
    finally:
        private_redis.start()
    assert Job.objects.get(pk=job.pk).status == Status.PENDING  # given back: the relay pushes it later


def test_a_process_that_enqueues_and_exits_at_once_delivers_its_jobs(acme, private_redis):
    env = {**os.environ, "REDIS_URL": private_redis.url, "DATABASE_URL": database_url(),
           "JOBS_PUSH_IN_BACKGROUND": "true"}
    for n in range(3):
        subprocess.run([sys.executable, "manage.py", "jobs_enqueue", "diagnostics.ping", "--tenant", "acme",
                        "--payload", f'{{"steps": {n + 1}}}'], cwd=ROOT, env=env, check=True, capture_output=True)
    queued = Job.objects.filter(status=Status.QUEUED)
    assert queued.count() == 3 and set(transport.get_queue("default").job_ids) == {str(job.pk) for job in queued}


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # the point of the test
def test_a_forked_child_starts_with_a_lock_of_its_own():
    with pusher.pusher._lock:  # held, as by the thread mid-batch, when the worker forks
        child = os.fork()
        if child == 0:
            os._exit(0 if pusher.pusher._lock.acquire(timeout=2) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
