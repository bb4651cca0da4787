from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Attempt, Job, Outcome, Status, Trigger
from jobs.reconciler import reconcile
from jobs.runtime import WorkerIdentity, attempt_claim
from tests.jobs import kinds  # noqa: F401  (registers the test kinds)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_hands_over_jobs_left_pending_by_a_redis_outage(acme, private_redis):
    private_redis.stop()
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    private_redis.start()
    report = reconcile()
    assert report.relayed == 1
    work()
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_it_requeues_queued_jobs_that_redis_lost(acme, private_redis, settings):
    settings.JOBS_LOST_AFTER_SECONDS = 0
    jobs = [enqueue("tests.echo", tenant=acme, payload={"text": str(i)}) for i in range(5)]
    private_redis.client().flushall()
    report = reconcile()
    assert (report.requeued_lost, report.relayed) == (5, 5)
    work()
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.SUCCEEDED).count() == 5


def test_it_leaves_recently_queued_jobs_alone(acme, private_redis):
    enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    private_redis.client().flushall()
    assert reconcile().requeued_lost == 0


def test_it_rescues_an_attempt_whose_worker_stopped_heartbeating(acme, settings):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    claim = attempt_claim(job_id=str(job.pk), worker=WorkerIdentity(name="gone", hostname="h1", pid=4242))
    Attempt.objects.filter(pk=claim.attempt.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    report = reconcile()
    assert report.abandoned == 1
    job.refresh_from_db()
    assert job.status == Status.QUEUED  # tests.echo retries with no backoff, so the same pass relayed it
    abandoned = job.attempt_set.get(number=1)
    assert abandoned.outcome == Outcome.ABANDONED
    assert "worker gone (pid 4242 on h1)" in abandoned.error_message
    work()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert job.attempt_set.get(number=2).trigger == Trigger.RESCUE


def test_it_does_not_touch_attempts_with_a_fresh_heartbeat(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    attempt_claim(job_id=str(job.pk), worker=WorkerIdentity(name="alive"))
    assert reconcile().abandoned == 0
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING


def test_the_jobs_reconcile_command_reports_what_it_repaired(acme, private_redis, capsys):
    from django.core.management import call_command

    private_redis.stop()
    enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    private_redis.start()
    call_command("jobs_reconcile")
    assert "1 job(s) handed over" in capsys.readouterr().out


def test_the_jobs_enqueue_command_prints_the_id_and_names_bad_fields(acme, capsys):
    from django.core.management import CommandError, call_command

    call_command("jobs_enqueue", "tests.echo", "--tenant", "acme", "--payload", '{"text": "hi"}')
    job = Job.objects.get(pk=capsys.readouterr().out.strip())
    assert (job.kind, job.tenant, job.source) == ("tests.echo", acme, "cli")
    with pytest.raises(CommandError, match="payload.text"):
        call_command("jobs_enqueue", "tests.echo", "--tenant", "acme", "--payload", '{"text": 1}')
    with pytest.raises(CommandError, match="--tenant"):
        call_command("jobs_enqueue", "tests.echo", "--tenant", "nobody")


def test_it_redelivers_a_job_stranded_by_a_worker_killed_right_after_dequeue(acme, private_redis, settings):
    settings.JOBS_LOST_AFTER_SECONDS = 0
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    client = private_redis.client()
    # What RQ's dequeue does before the worker can start the job: move the id to the intermediate list.
    client.lmove("rq:queue:high", "rq:queue:high:intermediate", "LEFT", "RIGHT")
    report = reconcile()
    assert (report.requeued_lost, report.relayed) == (1, 1)
    assert client.lrange("rq:queue:high:intermediate", 0, -1) == []
    work()
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED
    assert Attempt.objects.filter(job=job).count() == 1


def test_it_redelivers_a_job_popped_by_a_multi_queue_worker_that_died_before_claiming(acme, private_redis,
                                                                                       settings):
    settings.JOBS_LOST_AFTER_SECONDS = 0
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    client = private_redis.client()
    assert client.lpop("rq:queue:high") == str(job.pk).encode()  # a BLPOP, then kill -9
    assert reconcile().requeued_lost == 1
    work()
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_a_job_on_a_queue_that_no_longer_exists_fails_without_blocking_others(acme, settings):
    stranded = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    fine = enqueue("tests.echo", tenant=acme, payload={"text": "y"})
    Job.objects.filter(pk__in=[stranded.pk, fine.pk]).update(status=Status.PENDING)
    Job.objects.filter(pk=stranded.pk).update(queue="gone")
    assert reconcile().relayed == 2
    stranded.refresh_from_db()
    assert stranded.status == Status.FAILED and "'gone' is not configured" in stranded.last_error
    work()
    assert Job.objects.get(pk=fine.pk).status == Status.SUCCEEDED
