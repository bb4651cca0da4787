"""A token acts with its maker's role as it is at each request, not as it was when the token was made:
writes need the operator role, reads the viewer role, and a maker who left or was deactivated ends them."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from jobs import enqueue
from jobs.api.views import api
from jobs.models import AuditAction, AuditEvent, AuditState, Job, Status
from jobs.schedules.models import Schedule
from tenants.models import Membership, Role
from tests.api.conftest import Caller, assert_error

pytestmark = pytest.mark.django_db

READS = ["/api/v1/jobs", "/api/v1/queues", "/api/v1/kinds", "/api/v1/token"]


def ping(tenant) -> Job:
    return enqueue("diagnostics.ping", tenant=tenant, payload={})


def failed(job: Job) -> Job:
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, last_error="PingFailure")
    job.refresh_from_db()
    return job


def demote(user, tenant, role: str = Role.VIEWER) -> None:
    Membership.objects.filter(user=user, tenant=tenant).update(role=role)


BODIES = {"/api/v1/jobs": {"kind": "diagnostics.ping"},
          "/api/v1/jobs/bulk": {"kind": "diagnostics.ping", "payloads": [{}]}, "/api/v1/jobs/clean": {"days": 0},
          "/api/v1/batches": {"kind": "diagnostics.ping", "name": "b", "payloads": [{}]},
          "/api/v1/chains": {"name": "c", "steps": [{"kind": "diagnostics.ping", "payload": {}}]},
          "/api/v1/schedules": {"name": "hourly", "kind": "diagnostics.ping", "cron": "@hourly"},
          "/api/v1/schedules/{schedule_id}": {"cron": "@daily"}}


def writes(job: Job) -> list[tuple[str, str, dict | None]]:
    """Every non-GET operation the API publishes for a tenant's token (method, path, body), aimed at `job`
    where it takes a job id and at a schedule of its tenant's where it takes a schedule id."""
    schedule = Schedule.objects.create(tenant=job.tenant, name="nightly", kind="diagnostics.ping", cron="0 3 * * *")
    found = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            if method != "get" and operation["tags"] != ["platform"]:
                found.append((method, path.replace("{job_id}", str(job.pk)).replace("{name}", "default")
                              .replace("{schedule_id}", str(schedule.pk)), BODIES.get(path)))
    assert {(method, path.replace(str(job.pk), "{job_id}").replace(f"/schedules/{schedule.pk}", "/schedules/{schedule_id}")
             .removeprefix("/api/v1/")) for method, path, _ in found} == {
        ("post", "jobs"), ("post", "jobs/{job_id}/retry"), ("post", "jobs/{job_id}/cancel"),
        ("post", "jobs/{job_id}/stop"), ("delete", "jobs/{job_id}"), ("post", "jobs/bulk"), ("post", "tenant/pause"),
        ("post", "tenant/resume"), ("post", "jobs/clean"), ("post", "queues/default/empty"), ("post", "batches"), ("post", "chains"),
        ("post", "schedules"), ("patch", "schedules/{schedule_id}"), ("delete", "schedules/{schedule_id}"),
        ("post", "schedules/{schedule_id}/pause"), ("post", "schedules/{schedule_id}/resume"),
        ("post", "schedules/{schedule_id}/run")}
    return found


def send(caller, method: str, path: str, body: dict | None):
    return caller.request(method.upper(), path, body)


def test_it_refuses_a_demoted_makers_enqueue_with_403_naming_the_role(writer, alice, acme):
    demote(alice, acme)
    error = assert_error(writer.post("/api/v1/jobs", {"kind": "diagnostics.ping"}), 403, "forbidden_role")
    assert "operator" in error["message"] and writer.row.prefix in error["message"]
    assert not Job.objects.exists()
    [event] = AuditEvent.objects.filter(action=AuditAction.API_WRITE)
    assert event.state == AuditState.REFUSED and event.target.startswith("POST /api/v1/jobs via API token")


def test_it_refuses_every_write_of_a_demoted_maker_and_changes_nothing(writer, alice, acme):
    job = failed(ping(acme))
    demote(alice, acme)
    for method, path, body in writes(job):
        assert_error(send(writer, method, path, body), 403, "forbidden_role")
    assert list(Job.objects.values_list("pk", "status")) == [(job.pk, Status.FAILED)]


def test_it_still_answers_a_demoted_makers_reads(writer, alice, acme):
    job = ping(acme)
    demote(alice, acme)
    for path in [*READS, f"/api/v1/jobs/{job.pk}"]:
        assert writer.get(path).status_code == 200, path


def test_it_reads_the_makers_role_at_each_request(writer, alice, acme):
    demote(alice, acme)
    assert_error(writer.post("/api/v1/jobs", {"kind": "diagnostics.ping"}), 403, "forbidden_role")
    demote(alice, acme, Role.OPERATOR)
    assert writer.post("/api/v1/jobs", {"kind": "diagnostics.ping"}).status_code == 201


def test_it_lets_a_superusers_token_write_without_a_membership(make_token, acme, root):
    _, secret = make_token(user=root)
    response = Caller(Client(), secret).post("/api/v1/jobs", {"kind": "diagnostics.ping"})
    assert response.status_code == 201, response.content


def test_it_records_a_demoted_makers_refused_retry_and_cancel_in_the_audit_trail(writer, alice, acme):
    job = failed(ping(acme))
    demote(alice, acme)
    writer.post(f"/api/v1/jobs/{job.pk}/retry", {"reason": "try again"})
    writer.post(f"/api/v1/jobs/{job.pk}/cancel")
    events = AuditEvent.objects.exclude(action=AuditAction.API_TOKEN_CREATE).order_by("created_at", "pk")
    assert [(event.action, event.state, event.refused, event.done) for event in events] == [
        (AuditAction.RETRY, AuditState.REFUSED, 1, 0), (AuditAction.CANCEL, AuditState.REFUSED, 1, 0)]
    first = events[0]
    assert (first.actor, first.tenant) == (alice, acme)
    assert writer.row.prefix in first.actor_name and str(job.pk) in first.target
    assert "operator" in first.outcome and first.finished_at is not None


def test_it_does_not_audit_a_read_tokens_write_which_its_scope_refuses(reader, acme):
    job = failed(ping(acme))
    assert_error(reader.post(f"/api/v1/jobs/{job.pk}/retry"), 403, "insufficient_scope")
    assert not AuditEvent.objects.filter(action=AuditAction.RETRY).exists()


@pytest.mark.parametrize("gone", ["removed", "deactivated"])
def test_it_refuses_everything_once_the_maker_is_removed_or_deactivated(writer, alice, acme, gone):
    job = failed(ping(acme))
    if gone == "removed":
        Membership.objects.filter(user=alice).delete()
    else:
        get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    for path in [*READS, f"/api/v1/jobs/{job.pk}"]:
        assert_error(writer.get(path), 401)
    for method, path, body in writes(job):
        assert_error(send(writer, method, path, body), 401)
    assert Job.objects.count() == 1 and not AuditEvent.objects.filter(action=AuditAction.RETRY).exists()

