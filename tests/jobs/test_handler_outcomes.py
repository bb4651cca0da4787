"""What a handler can ask of the engine besides succeed or fail: snooze, retry later, give up."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Outcome, Status, Trigger
from tests.jobs import kinds
from tests.jobs.helpers import run_until_settled, work

pytestmark = pytest.mark.django_db(transaction=True)


def steered(acme, plan: list[str], **payload):
    return enqueue("tests.steered", tenant=acme, payload={"plan": plan, **payload})


def test_it_snoozes_without_spending_an_attempt(acme):
    job = steered(acme, ["snooze", "snooze", "snooze", "succeed"], seconds=30)
    before = timezone.now()
    work()
    job.refresh_from_db()
    assert job.status == Status.SCHEDULED
    assert job.run_at >= before + timedelta(seconds=29)
    assert job.max_attempts == 4 and job.last_error == ""
    assert job.progress == 40 and job.progress_message == "doing snooze"
    attempt = job.attempt_set.get()
    assert attempt.outcome == Outcome.SNOOZED and attempt.error_message == "waiting for the others"

    job = run_until_settled(job)
    assert job.status == Status.SUCCEEDED
    # Three snoozes and a success: more runs than max_attempts=3 allows failures, none of them counted.
    assert [a.outcome for a in job.attempt_set.order_by("number")] == [Outcome.SNOOZED] * 3 + [Outcome.SUCCEEDED]
    assert [a.trigger for a in job.attempt_set.order_by("number")][1:] == [Trigger.SNOOZE] * 3


def test_it_waits_at_least_as_long_as_retry_after_asks(acme):
    job = steered(acme, ["retry_after", "succeed"], seconds=600)
    before = timezone.now()
    work()
    job.refresh_from_db()
    assert job.status == Status.RETRYING
    assert job.run_at >= before + timedelta(seconds=599)  # the kind's own backoff is 1 s
    assert job.last_error == "RetryAfter: come back later"


def test_it_fails_at_once_when_the_handler_gives_up(acme):
    job = steered(acme, ["give_up", "succeed", "succeed"])
    job = run_until_settled(job)
    assert job.status == Status.FAILED
    assert job.attempts == 1 and job.max_attempts == 3
    assert job.last_error == "GiveUp: this can never work"


def test_it_still_retries_plain_failures_by_the_kinds_backoff(acme):
    kinds.calls.clear()
    job = run_until_settled(steered(acme, ["fail", "succeed"]))
    assert job.status == Status.SUCCEEDED
    assert [call[1]["step"] for call in kinds.calls if call[0] == "tests.steered"] == ["fail", "succeed"]


def test_a_failed_attempt_is_one_log_line_and_its_traceback_is_on_the_record(acme, caplog,
                                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 1})
    with caplog.at_level(logging.INFO):
        work()
    failed = [r for r in caplog.records if r.levelno >= logging.WARNING and str(job.pk) in r.getMessage()]
    assert [r.getMessage() for r in failed] == [f"Job {job.pk}: attempt failed: RuntimeError: boom on attempt 1"]
    assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)
    attempt = job.attempt_set.get()
    assert attempt.outcome == Outcome.FAILED and "boom on attempt 1" in attempt.traceback
