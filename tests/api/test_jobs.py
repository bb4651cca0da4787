"""The job endpoints: list (filters, cursor pages), get, enqueue (validation names the field), retry and
cancel (the staff layer's rules, audited with the token), queue statistics; another tenant's ids are 404."""
from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Attempt, AuditAction, AuditEvent, AuditEventJob, Job, Outcome, Status, Trigger
from tenants.models import Membership, Role
from tests.api.conftest import assert_error
from tests.jobs import kinds  # noqa: F401  (registers tests.echo, which is not public)
from tests.jobs.helpers import run_until_settled

pytestmark = pytest.mark.django_db


def ping(tenant, **payload) -> Job:
    return enqueue("diagnostics.ping", tenant=tenant, payload=payload)


def set_state(job: Job, **fields) -> Job:
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


# --- list ------------------------------------------------------------------------------------------


def test_it_pages_through_the_tenants_jobs_newest_first_with_an_opaque_cursor(writer, acme, globex):
    mine = [str(ping(acme, steps=n).pk) for n in range(7)]
    ping(globex)
    seen, cursor, pages = [], None, 0
    while True:
        response = writer.get("/api/v1/jobs", {"limit": 3, **({"cursor": cursor} if cursor else {})})
        page = response.json()
        seen += ids(response)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert str(UUID(seen[-1])) not in cursor  # opaque: not the id in plain sight
    assert pages == 3
    assert seen == list(reversed(mine))  # every job once, newest first, none of globex's


def test_it_says_there_is_no_next_page_when_a_page_ends_exactly(writer, acme):
    for _ in range(2):
        ping(acme)
    assert writer.get("/api/v1/jobs", {"limit": 2}).json()["next_cursor"] is None


def test_it_bounds_the_page_size(writer, settings):
    assert_error(writer.get("/api/v1/jobs", {"limit": settings.API_PAGE_SIZE_MAX + 1}), 422, "validation_error",
                 field="limit")
    assert_error(writer.get("/api/v1/jobs", {"limit": 0}), 422, field="limit")


def test_it_refuses_a_cursor_it_did_not_hand_out(writer):
    error = assert_error(writer.get("/api/v1/jobs", {"cursor": "not-a-cursor"}), 422, field="cursor")
    assert "next_cursor" in error["message"]


def test_it_filters_by_status_kind_queue_and_error(writer, acme):
    failed = set_state(ping(acme), status=Status.FAILED, last_error="PingFailure: on purpose")
    running = set_state(ping(acme), status=Status.RUNNING)
    echo = enqueue("tests.echo", tenant=acme, payload={"text": "hello"})
    assert ids(writer.get("/api/v1/jobs", {"status": "failed"})) == [str(failed.pk)]
    assert set(ids(writer.get("/api/v1/jobs", {"status": ["failed", "running"]}))) == {str(failed.pk), str(running.pk)}
    assert ids(writer.get("/api/v1/jobs", {"kind": "tests.echo"})) == [str(echo.pk)]
    assert ids(writer.get("/api/v1/jobs", {"queue": "high"})) == [str(echo.pk)]
    assert ids(writer.get("/api/v1/jobs", {"has_error": "true"})) == [str(failed.pk)]
    assert set(ids(writer.get("/api/v1/jobs", {"has_error": "false"}))) == {str(running.pk), str(echo.pk)}
    assert_error(writer.get("/api/v1/jobs", {"status": "exploded"}), 422, field="status[0]")


def test_it_filters_by_creation_time(writer, acme):
    now = timezone.now()
    old = set_state(ping(acme), created_at=now - timedelta(days=3))
    new = ping(acme)
    cut = (now - timedelta(days=1)).isoformat()
    assert ids(writer.get("/api/v1/jobs", {"created_after": cut})) == [str(new.pk)]
    assert ids(writer.get("/api/v1/jobs", {"created_before": cut})) == [str(old.pk)]
    assert_error(writer.get("/api/v1/jobs", {"created_after": "2026-05-01"}), 422, field="created_after")
    assert_error(writer.get("/api/v1/jobs", {"created_after": "1767225600"}), 422, field="created_after")


def test_it_searches_by_id_short_id_and_text(writer, acme, globex):
    target = enqueue("tests.echo", tenant=acme, payload={"text": "invoice-4711"})
    other = set_state(ping(acme), status=Status.FAILED, last_error="ConnectionError: smtp down")
    theirs = enqueue("tests.echo", tenant=globex, payload={"text": "invoice-4711"})
    assert ids(writer.get("/api/v1/jobs", {"q": str(target.pk)})) == [str(target.pk)]
    assert ids(writer.get("/api/v1/jobs", {"q": target.short_id})) == [str(target.pk)]
    assert ids(writer.get("/api/v1/jobs", {"q": "invoice-4711"})) == [str(target.pk)]
    assert ids(writer.get("/api/v1/jobs", {"q": "smtp"})) == [str(other.pk)]
    assert ids(writer.get("/api/v1/jobs", {"q": str(theirs.pk)})) == []


# --- get -------------------------------------------------------------------------------------------


def test_it_shows_a_job_with_progress_result_error_and_every_attempt(writer, acme):
    job = set_state(ping(acme), status=Status.SUCCEEDED, progress=100, progress_message="step 1 of 1", attempts=2,
                    result={"pong": True}, started_at=timezone.now() - timedelta(seconds=3),
                    finished_at=timezone.now())
    start = timezone.now() - timedelta(seconds=10)
    Attempt.objects.create(job=job, number=1, started_at=start, ended_at=start + timedelta(seconds=2),
                           outcome=Outcome.FAILED, error_type="PingFailure", error_message="failing on purpose")
    Attempt.objects.create(job=job, number=2, trigger=Trigger.RETRY, started_at=start + timedelta(seconds=5),
                           ended_at=start + timedelta(seconds=6.5), outcome=Outcome.SUCCEEDED)
    body = writer.get(f"/api/v1/jobs/{job.pk}").json()
    assert (body["status"], body["progress"], body["progress_message"], body["result"]) == (
        "succeeded", 100, "step 1 of 1", {"pong": True})
    assert (body["attempt_count"], body["max_attempts"], body["payload"]["steps"]) == (2, 3, 1)
    first, second = body["attempts"]
    assert (first["number"], first["outcome"], first["duration_seconds"]) == (1, "failed", 2.0)
    assert first["error"] == {"type": "PingFailure", "message": "failing on purpose"}
    assert (second["trigger"], second["outcome"], second["error"], second["duration_seconds"]) == (
        "retry", "succeeded", None, 1.5)


def test_it_follows_a_job_a_real_worker_runs_to_the_end(writer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the hand-over to RQ happens after commit
        created = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping",
                                               "payload": {"steps": 2, "fail_times": 1}})
    assert created.status_code == 201
    job = run_until_settled(Job.objects.get(pk=created.json()["id"]))
    body = writer.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["status"] == "succeeded" and body["result"]["pong"] is True
    assert [(a["number"], a["outcome"]) for a in body["attempts"]] == [(1, "failed"), (2, "succeeded")]
    assert body["attempts"][0]["error"]["type"] == "PingFailure"


# --- enqueue ---------------------------------------------------------------------------------------


def test_it_enqueues_a_public_kind_as_the_tokens_maker_from_the_api(writer, alice):
    response = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "payload": {"steps": 3}})
    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.tenant.slug, job.kind, job.payload["steps"], job.source, job.enqueued_by) == (
        "acme", "diagnostics.ping", 3, "api", alice)
    assert response.json()["status"] == job.status == Status.QUEUED


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"kind": "diagnostics.ping", "payload": {"steps": "three"}}, "payload.steps", "valid integer"),
    ({"kind": "diagnostics.ping", "payload": {"steps": 1, "bogus": 1}}, "payload.bogus", "Unknown field"),
    ({"kind": "diagnostics.ping", "payload": {"steps": True}}, "payload.steps", "valid integer"),
    ({"kind": "diagnostics.ping", "payload": [1, 2]}, "payload", "valid dictionary"),
    ({"kind": "diagnostics.ping", "payload": {"s\u0000": 1}}, "payload", "NUL"),
    ({"kind": "tests.echo", "payload": {"text": "x"}}, "kind", "public kinds: diagnostics.ping"),
    ({"kind": "no.such.kind"}, "kind", "public kinds: diagnostics.ping"),
    ({"payload": {}}, "kind", "Field required"),
    ({"kind": "diagnostics.ping", "extra": 1}, "extra", "Unknown field"),
    ({"kind": "diagnostics.ping", "delay": -1}, "delay", "greater than or equal to 0"),
    ({"kind": "diagnostics.ping", "delay": False}, "delay", "valid number"),
    ({"kind": "diagnostics.ping", "delay": 5, "run_at": "2030-01-01T00:00:00Z"}, "delay", "not both"),
    ({"kind": "diagnostics.ping", "run_at": "2030-01-01T00:00:00"}, "run_at", "UTC offset"),
    ({"kind": "diagnostics.ping", "run_at": "9999-12-31T23:00:00-23:00"}, "run_at", "9999"),
    ({"kind": "diagnostics.ping", "idempotency_key": "x" * 201}, "idempotency_key", "at most 200"),
    ({"kind": "diagnostics.ping", "idempotency_key": "  "}, "idempotency_key", "visible character"),
])
def test_it_refuses_a_bad_enqueue_naming_the_field_and_stores_nothing(writer, body, field, words):
    error = assert_error(writer.post("/api/v1/jobs", body), 422, "validation_error", field=field)
    assert words in error["message"], error
    assert not Job.objects.exists()


def test_it_names_every_bad_field_at_once(writer):
    error = assert_error(writer.post("/api/v1/jobs", {"kind": "diagnostics.ping",
                                                       "payload": {"steps": "x", "fail_times": "y"}}), 422)
    assert {detail["field"] for detail in error["details"]} == {"payload.steps", "payload.fail_times"}


def test_it_refuses_a_body_that_is_not_json_with_400(writer):
    response = writer.client.post("/api/v1/jobs", "{not json", content_type="application/json",
                                  HTTP_AUTHORIZATION=f"Bearer {writer.token}")
    assert_error(response, 400, "bad_request")


def test_it_delays_a_job_by_run_at_or_delay(writer):
    later = timezone.now() + timedelta(hours=2)
    by_time = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "run_at": later.isoformat()}).json()
    by_delay = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "delay": 600}).json()
    assert by_time["status"] == by_delay["status"] == "scheduled"
    assert abs(Job.objects.get(pk=by_time["id"]).run_at - later) < timedelta(seconds=1)
    assert timedelta(seconds=590) < Job.objects.get(pk=by_delay["id"]).run_at - timezone.now() <= timedelta(seconds=600)


def test_it_takes_any_utc_offset_rfc_3339_allows(writer, acme):
    # PostgreSQL takes offsets up to 15:59; these are valid RFC 3339 all the same (and were a 500).
    far_east = (timezone.now() + timedelta(hours=2)).astimezone(timezone.get_fixed_timezone(20 * 60 + 5))
    made = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "run_at": far_east.isoformat()})
    assert made.status_code == 201, made.content
    assert abs(Job.objects.get(pk=made.json()["id"]).run_at - far_east) < timedelta(seconds=1)
    listed = writer.get("/api/v1/jobs", {"created_before": "4139-08-31T19:59:13+20:05"})
    assert listed.status_code == 200 and ids(listed) == [made.json()["id"]]


def test_it_returns_the_unfinished_job_of_an_idempotency_key_with_200(writer):
    body = {"kind": "diagnostics.ping", "idempotency_key": "order-42"}
    first = writer.post("/api/v1/jobs", body)
    again = writer.post("/api/v1/jobs", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and Job.objects.count() == 1


# --- retry and cancel --------------------------------------------------------------------------------


def test_it_retries_a_failed_job_through_the_staff_layer_audited_with_the_token(writer, alice, acme):
    job = set_state(ping(acme), status=Status.FAILED, last_error="PingFailure", finished_at=timezone.now())
    response = writer.post(f"/api/v1/jobs/{job.pk}/retry", {"reason": "deploy fixed it"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("pending", "queued")
    job.refresh_from_db()
    assert (job.next_trigger, job.next_triggered_by) == (Trigger.MANUAL, alice)
    event = AuditEvent.objects.get(action=AuditAction.RETRY)
    assert (event.actor, event.tenant, event.reason, event.done, event.state) == (
        alice, acme, "deploy fixed it", 1, "done")
    assert writer.row.prefix in event.actor_name and writer.row.prefix in event.target
    assert "billing" in event.target
    assert list(AuditEventJob.objects.filter(event=event).values_list("job_id", flat=True)) == [job.pk]


def test_it_cancels_a_waiting_job_and_answers_409_when_there_is_nothing_to_cancel(writer, acme):
    job = ping(acme)
    response = writer.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    error = assert_error(writer.post(f"/api/v1/jobs/{job.pk}/cancel"), 409, "job_state")
    assert "cancelled" in error["message"]
    assert AuditEvent.objects.filter(action=AuditAction.CANCEL).count() == 2  # the skipped one is recorded too


def test_it_answers_409_for_retrying_a_job_that_has_not_failed(writer, acme):
    job = ping(acme)
    error = assert_error(writer.post(f"/api/v1/jobs/{job.pk}/retry"), 409, "job_state")
    assert "only failed or cancelled jobs" in error["message"]
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_it_refuses_writes_when_the_tokens_maker_lost_the_operator_role(writer, alice, acme):
    Membership.objects.filter(user=alice, tenant=acme).update(role=Role.VIEWER)
    job = set_state(ping(acme), status=Status.FAILED)
    assert_error(writer.post(f"/api/v1/jobs/{job.pk}/retry"), 403, "forbidden_role")
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert writer.get(f"/api/v1/jobs/{job.pk}").status_code == 200  # reading is still fine


# --- another tenant's ids ------------------------------------------------------------------------------


def test_it_answers_404_for_another_tenants_job_on_every_id_endpoint(writer, globex):
    theirs = set_state(enqueue("tests.echo", tenant=globex, payload={"text": "globex-secret"}),
                       status=Status.FAILED)
    before = list(Job.objects.filter(pk=theirs.pk).values())
    for method, path in [("get", f"/api/v1/jobs/{theirs.pk}"), ("post", f"/api/v1/jobs/{theirs.pk}/retry"),
                         ("post", f"/api/v1/jobs/{theirs.pk}/cancel")]:
        response = getattr(writer, method)(path)
        assert_error(response, 404, "not_found")
        assert "globex-secret" not in response.content.decode()
    assert list(Job.objects.filter(pk=theirs.pk).values()) == before
    assert not AuditEvent.objects.filter(action__in=[AuditAction.RETRY, AuditAction.CANCEL]).exists()
    system = enqueue("tests.echo", tenant=None, payload={"text": "system"})
    assert_error(writer.get(f"/api/v1/jobs/{system.pk}"), 404)


def test_it_answers_404_for_a_malformed_job_id(writer):
    assert_error(writer.get("/api/v1/jobs/not-a-uuid"), 404)
    assert_error(writer.post("/api/v1/jobs/01A23456-0000-7000-8000-000000000000/retry"), 404)


# --- queues and kinds ----------------------------------------------------------------------------------


def test_it_counts_the_tenants_own_jobs_per_queue(writer, acme, globex):
    old = set_state(ping(acme), created_at=timezone.now() - timedelta(minutes=5))  # queued, default
    set_state(ping(acme), status=Status.RUNNING)
    set_state(ping(acme), status=Status.FAILED, updated_at=timezone.now() - timedelta(minutes=10))
    set_state(ping(acme), status=Status.FAILED, updated_at=timezone.now() - timedelta(hours=3))
    enqueue("tests.echo", tenant=acme, payload={"text": "x"})  # high
    for _ in range(3):
        ping(globex)
    body = writer.get("/api/v1/queues").json()
    queues = {queue["name"]: queue for queue in body["queues"]}
    assert set(queues) == {"critical", "high", "default", "low"} and body["tenant_paused"] is False
    default = queues["default"]
    assert default["counts"] == {"pending": 0, "scheduled": 0, "queued": 1, "running": 1, "retrying": 0}
    assert (default["waiting"], default["failed_last_hour"], default["failed_last_day"]) == (1, 1, 2)
    assert 299 <= default["oldest_waiting_seconds"] < 330
    assert old.queue == "default"
    assert queues["high"]["counts"]["queued"] == 1 and queues["low"]["oldest_waiting_seconds"] is None


def test_it_lists_the_public_kinds_with_their_payload_schema(writer):
    kinds = {kind["name"]: kind for kind in writer.get("/api/v1/kinds").json()}
    # The built-in kind, and the suite's public Django task (a task is a kind like any other).
    assert list(kinds) == ["diagnostics.ping", "tests.jobs.django_tasks.public_cleanup"]
    assert set(kinds["diagnostics.ping"]["payload_schema"]["properties"]) == {"seconds", "steps", "fail_times"}
    assert set(kinds["tests.jobs.django_tasks.public_cleanup"]["payload_schema"]["properties"]) == {"args", "kwargs"}
