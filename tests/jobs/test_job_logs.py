"""ctx.log: lines a handler writes, kept per attempt (bounded), shown on the job's page, live while it runs."""
from __future__ import annotations

import pytest
from django.test import Client

from jobs import enqueue
from jobs.models import AttemptLog, LogLevel, Status
from jobs.runtime import log
from tests.jobs import kinds  # noqa: F401 (registers tests.logger)
from tests.jobs.helpers import status_of, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_handlers_lines_are_kept_with_its_attempt_in_order_with_their_level(acme):
    job = enqueue("tests.logger", tenant=acme, payload={"lines": 3, "level": "warning"})
    work()
    assert status_of(job) == Status.SUCCEEDED
    lines = list(AttemptLog.objects.filter(attempt__job=job).values_list("attempt__number", "level", "message"))
    assert lines == [(1, LogLevel.WARNING, "line 1"), (1, LogLevel.WARNING, "line 2"), (1, LogLevel.WARNING, "line 3")]


def test_an_attempt_keeps_its_first_lines_and_says_how_many_more_there_were(acme, settings):
    settings.JOBS_LOG_LINES = 2
    job = enqueue("tests.logger", tenant=acme, payload={"lines": 5})
    work()
    messages = list(AttemptLog.objects.filter(attempt__job=job).values_list("message", flat=True))
    assert messages == ["line 1", "line 2", "3 more line(s) not kept: an attempt keeps 2 (JOBS_LOG_LINES)."]


def test_an_unknown_level_fails_the_attempt_naming_the_levels(acme):
    job = enqueue("tests.logger", tenant=acme, payload={"lines": 1, "level": "loud"})
    work()
    job.refresh_from_db()
    assert job.status == Status.FAILED and "Unknown log level 'loud'" in job.last_error


def test_outside_a_job_a_line_goes_to_the_log(caplog):
    log("no job here", "warning")
    assert "no job here" in caplog.text


def test_the_job_page_shows_the_lines_and_refreshes_them_while_the_job_runs(acme, olga):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"steps": 2})
    client = Client()
    client.force_login(olga)
    waiting = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'id="job-log" data-refresh-seconds="2"' in waiting and "No log lines yet" in waiting
    work()
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "step 1 of 2 done" in page and "step 2 of 2 done" in page and "Log (3 lines)" in page
    assert 'id="job-log" data-refresh-seconds' not in page  # finished: nothing more will come
