"""Worker hosts whose clocks are off: claims, heartbeats and the abandonment cutoff go by the database's
clock, so a worker 30 s behind is not taken for dead (its attempt run twice), and one 30 s ahead that
dies is noticed as soon as any other."""
from __future__ import annotations

import time

import pytest
from django.db.models.functions import Now

from jobs import enqueue
from jobs.models import Attempt, Job, Outcome, Status
from jobs.reconciler import rescue_abandoned
from tests.support import FAST_ENGINE_ENV, Process, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUES = ("critical", "high", "default", "low")
ABANDON_AFTER = float(FAST_ENGINE_ENV["JOBS_ABANDON_AFTER_SECONDS"])


def database_now():
    return Job.objects.annotate(now=Now()).values_list("now", flat=True).first()


def test_a_worker_whose_clock_is_30_s_behind_is_not_taken_for_dead(acme, private_redis, processes, settings):
    settings.JOBS_ABANDON_AFTER_SECONDS = ABANDON_AFTER
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 3 * ABANDON_AFTER, "steps": 9})
    processes.append(Process("rqworker", *QUEUES, redis_url=private_redis.url, env=FAST_ENGINE_ENV,
                             clock_shift=-30))
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), timeout=30,
             what="the job to start")
    rescued = 0
    while Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
        rescued += rescue_abandoned()  # the reconciler, on a host with the right time
        time.sleep(0.3)
    job.refresh_from_db()
    assert (rescued, job.status, job.attempts) == (0, Status.SUCCEEDED, 1)
    attempt = job.attempt_set.get()
    now = database_now()
    assert abs((now - attempt.started_at).total_seconds() - 3 * ABANDON_AFTER) < 5  # on the database's clock
    assert attempt.ended_at >= attempt.started_at and attempt.heartbeat_at >= attempt.started_at


def test_a_worker_whose_clock_is_30_s_ahead_is_noticed_dead_in_time(acme, private_redis, processes, settings):
    settings.JOBS_ABANDON_AFTER_SECONDS = ABANDON_AFTER
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 60, "steps": 60})
    ahead = Process("rqworker", *QUEUES, redis_url=private_redis.url, env=FAST_ENGINE_ENV, clock_shift=30)
    processes.append(ahead)
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), timeout=30,
             what="the job to start")
    time.sleep(1)
    ahead.kill9()
    died = time.monotonic()
    wait_for(rescue_abandoned, timeout=3 * ABANDON_AFTER, what="the dead worker's attempt to be rescued")
    assert time.monotonic() - died < 2 * ABANDON_AFTER
    attempt = Attempt.objects.get(job=job)
    assert attempt.outcome == Outcome.ABANDONED
    assert Job.objects.get(pk=job.pk).status == Status.RETRYING
