"""Structured logs: a JSON line per job state change, request ids carried from the request to the
jobs it enqueued (and theirs), secrets and sensitive payload fields redacted."""
from __future__ import annotations

import json
import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from jobs import enqueue, eventlog
from jobs.models import Job, Status
from tests.jobs import kinds  # noqa: F401  (registers the tests. kinds)
from tests.jobs.helpers import work
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Lines(logging.Handler):
    """The `jobs.events` records, formatted the way production writes them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(eventlog.JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def of(self, job_id) -> list[dict]:
        return [line for line in self.lines if line.get("job_id") == str(job_id)]


@pytest.fixture
def lines():
    handler = Lines()
    eventlog.events.addHandler(handler)
    level = eventlog.events.level
    eventlog.events.setLevel(logging.INFO)
    yield handler
    eventlog.events.removeHandler(handler)
    eventlog.events.setLevel(level)


def through_middleware(view, **headers):
    request = RequestFactory().get("/", headers=headers)
    return eventlog.RequestIdMiddleware(view)(request)


def test_a_request_id_is_taken_when_well_formed_and_made_otherwise(db):
    seen = []
    view = lambda request: seen.append(eventlog.current_request_id()) or HttpResponse()  # noqa: E731
    response = through_middleware(view, X_Request_ID="edge-4f2a:01")
    assert response["X-Request-ID"] == seen[-1] == "edge-4f2a:01"
    response = through_middleware(view, X_Request_ID="no spaces or <tags> allowed")
    assert response["X-Request-ID"] == seen[-1]
    assert len(seen[-1]) == 32 and seen[-1] != "no spaces or <tags> allowed"
    assert eventlog.current_request_id() == ""  # nothing leaks past the request


def test_every_state_change_is_one_line_with_the_request_id_carried_to_child_jobs(acme, lines):
    def view(request):
        job = enqueue("tests.parent", tenant=acme, payload={"pin": "4321", "api_token": "tj_abc_secretvalue123"})
        return HttpResponse(str(job.pk))

    response = through_middleware(view, X_Request_ID="req-77")
    parent = Job.objects.get(pk=response.content.decode())
    assert parent.request_id == "req-77"
    work()
    parent.refresh_from_db()
    assert parent.status == Status.SUCCEEDED
    child = Job.objects.get(pk=parent.result)
    assert child.request_id == "req-77"  # enqueued by the handler, under its job's request id

    created, running, finished = lines.of(parent.pk)
    assert [line["status"] for line in (created, running, finished)] == ["queued", "running", "succeeded"]
    for line in (created, running, finished):
        assert line["request_id"] == "req-77" and line["kind"] == "tests.parent" and line["tenant_id"] == acme.pk
        assert line["level"] == "INFO" and line["logger"] == "jobs.events"
    assert created["event"] == "job.created"
    assert created["payload"] == {"pin": "[redacted]", "api_token": "[redacted]"}
    assert (running["attempt"], finished["attempt"]) == (1, 1)
    assert finished["outcome"] == "succeeded" and finished["duration_ms"] >= 0
    assert "duration_ms" not in running
    assert [line["status"] for line in lines.of(child.pk)] == ["queued", "running", "succeeded"]
    assert all(line["request_id"] == "req-77" for line in lines.of(child.pk))
    assert "4321" not in json.dumps(lines.lines) and "secretvalue123" not in json.dumps(lines.lines)


def test_failures_retries_cancels_and_manual_retries_are_lines_too(acme, lines):
    from jobs.services import job_cancel, job_retry

    flaky = enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 5})
    work()
    flaky.refresh_from_db()
    assert flaky.status == Status.RETRYING
    failed_line = lines.of(flaky.pk)[-1]
    assert (failed_line["status"], failed_line["outcome"], failed_line["error_type"]) == (
        "retrying", "failed", "RuntimeError")

    waiting = enqueue("tests.echo", tenant=acme, payload={"text": "x"}, delay=3600)
    job_cancel(job=waiting)
    assert [line["status"] for line in lines.of(waiting.pk)] == ["scheduled", "cancelled"]
    job_retry(job=Job.objects.get(pk=waiting.pk))
    assert lines.of(waiting.pk)[2]["status"] == "pending"
    assert lines.of(waiting.pk)[2]["trigger"] == "manual"
    wait_for(lambda: len(lines.of(waiting.pk)) >= 4, timeout=5, what="the relay's line")
    assert lines.of(waiting.pk)[3]["status"] == "queued"


def test_the_formatter_masks_secrets_in_any_message():
    formatter = eventlog.JsonFormatter()
    record = logging.LogRecord("jobs.webhooks", logging.WARNING, __file__, 1,
                               "posting with Authorization: Bearer abcdefgh12345678 to https://ops:hunter2@example.com/x "
                               "secret whsec_c2VjcmV0c2VjcmV0", None, None)
    line = json.loads(formatter.format(record))
    assert "abcdefgh12345678" not in line["message"] and "hunter2" not in line["message"]
    assert "whsec_c2VjcmV0" not in line["message"]
    assert "Bearer [redacted]" in line["message"] and "https://ops:[redacted]@example.com/x" in line["message"]
    assert line["level"] == "WARNING" and line["request_id"] == ""
    plain = eventlog.PlainFormatter("%(message)s").format(record)
    assert "hunter2" not in plain and "abcdefgh12345678" not in plain


def test_redact_masks_named_and_secret_looking_keys_at_any_depth():
    value = {"to": "a@example.com", "Password": "p", "nested": [{"client_secret": "s", "pin": "1", "ok": 2}]}
    assert eventlog.redact(value, sensitive={"pin"}) == {
        "to": "a@example.com", "Password": "[redacted]",
        "nested": [{"client_secret": "[redacted]", "pin": "[redacted]", "ok": 2}]}
