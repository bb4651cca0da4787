from __future__ import annotations

import json

import pytest

from jobs import enqueue, signals, transport
from jobs.models import Attempt, Job, Outcome, Status, Trigger
from jobs.runtime import Claim, WorkerIdentity, attempt_claim
from jobs.services import job_cancel, job_retry
from jobs.workers import TrackedSimpleWorker
from tests.jobs import kinds
from tests.jobs.helpers import count_queries, run_until_settled, work

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_calls():
    kinds.calls.clear()


def test_it_runs_a_job_and_records_the_attempt(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "ab", "count": 2})
    work()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert job.result == {"text": "abab", "tenant": "acme"}
    assert (job.attempts, job.progress) == (1, 100)
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at
    attempt = job.attempt_set.get()
    assert (attempt.number, attempt.outcome, attempt.trigger) == (1, Outcome.SUCCEEDED, Trigger.FIRST)
    assert attempt.worker_name and attempt.hostname and attempt.pid


def test_it_passes_typed_payload_values_to_the_handler(acme):
    enqueue("tests.echo", tenant=acme, payload={"text": "x", "when": "2026-05-01T10:00:00Z"})
    work()
    assert kinds.calls[0][1]["when"].year == 2026


def test_it_retries_with_backoff_then_succeeds_keeping_every_attempt(acme):
    job = enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 2})
    work()
    # The kind's backoff is 0: the retry is due at once, and the slot the attempt freed hands it over.
    first = job.attempt_set.get(number=1)
    assert first.outcome == Outcome.FAILED and "boom on attempt 1" in first.error_message
    job = run_until_settled(job)
    assert job.status == Status.SUCCEEDED and job.attempts == 3
    attempts = list(job.attempt_set.order_by("number"))
    assert [a.outcome for a in attempts] == [Outcome.FAILED, Outcome.FAILED, Outcome.SUCCEEDED]
    assert [a.trigger for a in attempts] == [Trigger.FIRST, Trigger.RETRY, Trigger.RETRY]
    assert attempts[0].error_type == "RuntimeError"
    assert 'raise RuntimeError(f"boom on attempt' in attempts[0].traceback


def test_it_fails_the_job_once_attempts_run_out(acme):
    failed = []
    signals.job_failed.connect(lambda sender, job, **kw: failed.append(job.pk), weak=False, dispatch_uid="t1")
    try:
        job = run_until_settled(enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 9}))
    finally:
        signals.job_failed.disconnect(dispatch_uid="t1")
    assert job.status == Status.FAILED and job.attempts == 3
    assert failed == [job.pk]


def test_it_records_a_timeout_as_a_timed_out_attempt(acme):
    job = run_until_settled(enqueue("tests.slow", tenant=acme, payload={"seconds": 5}))
    assert job.status == Status.FAILED
    assert list(job.attempt_set.values_list("outcome", flat=True)) == [Outcome.TIMED_OUT] * 2


def test_it_fails_an_attempt_whose_result_is_not_json(acme):
    job = run_until_settled(enqueue("tests.bad_result", tenant=acme, payload={}))
    assert job.status == Status.FAILED
    assert "not JSON-serialisable" in job.last_error


def test_a_duplicate_delivery_runs_the_handler_once(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "once"})
    transport.get_queue("high").connection.rpush("rq:queue:high", str(job.pk))  # delivered twice
    work()
    assert len(kinds.calls) == 1
    assert Attempt.objects.filter(job=job).count() == 1


def test_progress_writes_are_throttled_and_the_last_value_lands(acme):
    job = enqueue("tests.chatty", tenant=acme, payload={"reports": 10_000, "fail": True})
    with count_queries() as queries:
        work()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert (job.progress, job.progress_message) == (100, "report 10000")
    assert queries.updates_of("jobs_job", "progress_message") <= 5


def test_signals_tell_host_code_what_happened(acme):
    seen = []
    for name in ("job_started", "job_succeeded"):
        getattr(signals, name).connect(lambda sender, job, name=name, **kw: seen.append((name, job.pk)),
                                       weak=False, dispatch_uid=name)
    try:
        job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
        work()
    finally:
        for name in ("job_started", "job_succeeded"):
            getattr(signals, name).disconnect(dispatch_uid=name)
    assert seen == [("job_started", job.pk), ("job_succeeded", job.pk)]


def test_a_cancelled_job_is_taken_out_of_rq_and_never_runs(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    job_cancel(job=job)
    assert transport.get_queue("high").connection.lrange("rq:queue:high", 0, -1) == []
    transport.get_queue("high").connection.rpush("rq:queue:high", str(job.pk))  # a stray delivery
    work()
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and kinds.calls == []


def test_cancel_refuses_a_finished_job(acme):
    from jobs.services import JobStateError

    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    work()
    with pytest.raises(JobStateError, match="only waiting jobs can be cancelled"):
        job_cancel(job=Job.objects.get(pk=job.pk))


def test_a_manual_retry_starts_a_new_attempt_of_the_same_job(acme, alice):
    job = run_until_settled(enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 3}))
    assert job.status == Status.FAILED
    job_retry(job=job, user=alice)
    work()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED and job.attempts == 4
    last = job.attempt_set.get(number=4)
    assert (last.trigger, last.triggered_by) == (Trigger.MANUAL, alice)


def test_a_stopped_job_is_recorded_as_stopped_and_not_retried(acme):
    job = enqueue("tests.stoppable", tenant=acme, payload={"stop_after": 5})
    work()
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert job.attempts == 1
    assert job.attempt_set.get().outcome == Outcome.STOPPED


def test_a_database_blip_while_recording_the_outcome_neither_stops_the_worker_nor_loses_it(acme, monkeypatch):
    from jobs import runtime

    real_finish, calls = runtime.attempt_finish, []

    def flaky_finish(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return real_finish(**kwargs)

    monkeypatch.setattr(runtime, "attempt_finish", flaky_finish)
    monkeypatch.setattr("jobs.workers.time.sleep", lambda seconds: None)
    first = enqueue("tests.echo", tenant=acme, payload={"text": "a"})
    second = enqueue("tests.echo", tenant=acme, payload={"text": "b"})
    work()
    assert Job.objects.get(pk=first.pk).status == Status.SUCCEEDED
    assert Job.objects.get(pk=second.pk).status == Status.SUCCEEDED  # the worker carried on


def test_retry_refuses_a_job_that_is_not_failed_or_cancelled(acme):
    from jobs.services import JobStateError

    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    with pytest.raises(JobStateError, match="only failed or cancelled"):
        job_retry(job=job)
    assert Job.objects.get(pk=job.pk).max_attempts == 2


def test_a_receiver_that_raises_does_not_lose_the_claimed_attempt(acme):
    def broken(sender, **kwargs):
        raise RuntimeError("host code bug")

    signals.job_started.connect(broken, weak=False, dispatch_uid="broken")
    try:
        job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
        work()
    finally:
        signals.job_started.disconnect(dispatch_uid="broken")
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_extra_payload_fields_reach_a_handler_that_takes_kwargs(acme):
    from jobs import job_kind

    seen = {}

    @job_kind("tests.open_ended", max_attempts=1)
    def open_ended(ctx, *, a: int, **rest) -> None:
        seen.update(a=a, **rest)

    enqueue("tests.open_ended", tenant=acme, payload={"a": 1, "colour": "red"})
    work()
    assert seen == {"a": 1, "colour": "red"}


def test_a_tracked_workers_command_listener_wakes_every_second():
    # Stopping a worker (SIGTERM, the end of a burst) waits for the listener's current read of its command
    # channel to end; RQ's own reads last a minute, and the suite spent minutes on them.
    worker = TrackedSimpleWorker([transport.get_queue("default")], connection=transport.get_connection())
    worker.subscribe()
    try:
        assert worker.pubsub_thread.sleep_time <= 1
    finally:
        worker.unsubscribe()


def test_a_claim_reaches_the_work_process_as_json_with_its_rows_whole(acme, django_assert_num_queries):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "héllo", "count": 3})
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    claim = attempt_claim(job_id=str(job.pk), worker=WorkerIdentity(name="w"))
    data = claim.to_json()
    assert json.loads(data)["rows"][0][0] == str(job.pk)  # JSON: nothing the work process reads can run code
    with django_assert_num_queries(0):  # the tenant comes along: the handler's tenant context needs no query
        copy = Claim.from_json(data)
        assert (copy.job.pk, copy.job.kind, copy.job.payload, copy.job.tenant.slug) == (
            job.pk, "tests.echo", {"text": "héllo", "count": 3, "when": None}, "acme")
        assert (copy.attempt.pk, copy.attempt.number, copy.attempt.job is copy.job) == (
            claim.attempt.pk, 1, True)
    assert copy.clock_offset == claim.clock_offset and not copy.job._state.adding
    for original, decoded in ((claim.job, copy.job), (claim.attempt, copy.attempt), (acme, copy.job.tenant)):
        for f in type(original)._meta.concrete_fields:  # every column, datetimes to the microsecond
            assert getattr(decoded, f.attname) == getattr(original, f.attname), f.attname
    assert copy.attempt.started_at.microsecond == claim.attempt.started_at.microsecond


def test_a_claim_with_a_column_too_few_or_too_many_is_refused(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    message = json.loads(attempt_claim(job_id=str(job.pk), worker=WorkerIdentity(name="w")).to_json())
    message["rows"][0].append("extra")
    with pytest.raises(ValueError, match="A Job row has"):
        Claim.from_json(json.dumps(message).encode())
