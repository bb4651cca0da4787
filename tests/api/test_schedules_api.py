"""Schedules through the API: listed and read by any of the tenant's tokens, made, changed, paused, resumed,
run now and deleted by its admins' read-write tokens, checked as the admin's form checks them, and each
write an audit event naming the token."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs.models import AuditAction, AuditEvent, AuditState, Job
from jobs.schedules.models import RunOutcome, Schedule
from tests.api.conftest import Caller, assert_error

pytestmark = pytest.mark.django_db

NIGHTLY = {"name": "nightly ping", "kind": "diagnostics.ping", "payload": {"steps": 2}, "cron": "30 2 * * *",
           "timezone": "Europe/Berlin", "priority": 7}


def made(writer, body=None) -> dict:
    response = writer.post("/api/v1/schedules", body or NIGHTLY)
    assert response.status_code == 201, response.content
    return response.json()


def test_an_admins_token_makes_a_schedule_that_the_tenants_tokens_read(writer, reader):
    schedule = made(writer)
    assert (schedule["kind"], schedule["payload"], schedule["priority"], schedule["state"]) == (
        "diagnostics.ping", {"seconds": 0.0, "steps": 2, "fail_times": 0}, 7, "active")
    assert schedule["description"] and schedule["next_run_at"] and schedule["last_run"] is None
    row = Schedule.objects.get(pk=schedule["id"])
    assert (row.tenant.slug, row.timezone, row.created_by.username) == ("acme", "Europe/Berlin", "alice")
    assert [entry["id"] for entry in reader.get("/api/v1/schedules").json()] == [schedule["id"]]
    assert reader.get(f"/api/v1/schedules/{schedule['id']}").json() == schedule
    event = AuditEvent.objects.get(action=AuditAction.SCHEDULE_ADD)
    assert f"API token {writer.row.prefix}" in event.actor_name and "nightly ping" in event.target


def test_it_refuses_a_bad_schedule_naming_every_field_and_makes_nothing(writer):
    response = writer.post("/api/v1/schedules", {**NIGHTLY, "cron": "61 * * * *", "timezone": "Mars/Olympus",
                                                 "payload": {"steps": "two"},
                                                 "start_at": "2027-01-02T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"})
    error = assert_error(response, 422, "validation_error")
    fields = {detail["field"] for detail in error["details"]}
    assert fields == {"cron", "timezone", "payload.steps", "end_at"}, error
    assert "Mars/Olympus" in next(d["message"] for d in error["details"] if d["field"] == "timezone")
    assert_error(writer.post("/api/v1/schedules", {**NIGHTLY, "cron": "@every 5s"}), 422, field="cron")
    assert_error(writer.post("/api/v1/schedules", {**NIGHTLY, "kind": "email.send"}), 422, field="kind")
    made(writer)
    assert_error(writer.post("/api/v1/schedules", NIGHTLY), 422, field="name")  # taken in this tenant
    assert Schedule.objects.count() == 1


def test_a_change_is_checked_with_the_fields_kept_and_moves_the_timing(writer):
    schedule = made(writer)
    changed = writer.patch(f"/api/v1/schedules/{schedule['id']}", {"cron": "@hourly", "priority": 9})
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["cron"], body["priority"], body["payload"]["steps"]) == ("0 * * * *", 9, 2)  # @hourly, as stored
    assert body["next_run_at"] != schedule["next_run_at"]
    bad = writer.patch(f"/api/v1/schedules/{schedule['id']}", {"payload": {"steps": "two"}})
    assert_error(bad, 422, field="payload.steps")
    assert_error(writer.patch(f"/api/v1/schedules/{schedule['id']}", {"end_at": "2000-01-01T00:00:00Z",
                                                                      "start_at": "2001-01-01T00:00:00Z"}),
                 422, field="end_at")
    row = Schedule.objects.get(pk=schedule["id"])
    assert (row.cron, row.priority, row.payload["steps"], row.end_at) == ("0 * * * *", 9, 2, None)
    event = AuditEvent.objects.get(action=AuditAction.SCHEDULE_CHANGE)
    assert event.outcome == "Changed: cron, priority." and writer.row.prefix in event.actor_name


def test_pause_resume_run_now_and_delete(writer):
    schedule = made(writer)
    url = f"/api/v1/schedules/{schedule['id']}"
    paused = writer.post(f"{url}/pause")
    assert (paused.status_code, paused.json()["state"], paused.json()["next_run_at"]) == (200, "paused", None)
    assert writer.post(f"{url}/resume").json()["state"] == "active"
    run = writer.post(f"{url}/run")
    assert run.status_code == 201, run.content
    job = Job.objects.get(pk=run.json()["job"])
    assert (job.kind, job.payload["steps"], job.priority, run.json()["outcome"]) == (
        "diagnostics.ping", 2, 7, RunOutcome.MANUAL)
    assert writer.get(url).json()["last_run"]["job"] == str(job.pk)
    assert writer.request("DELETE", url).status_code == 204
    assert not Schedule.objects.exists() and Job.objects.filter(pk=job.pk).exists()  # its job stays
    assert list(AuditEvent.objects.filter(actor_name__contains=writer.row.prefix).order_by("pk")
                .values_list("action", flat=True)) == [
        AuditAction.SCHEDULE_ADD, AuditAction.SCHEDULE_PAUSE, AuditAction.SCHEDULE_RESUME,
        AuditAction.SCHEDULE_RUN_NOW, AuditAction.SCHEDULE_DELETE]


def test_a_run_now_whose_job_is_refused_is_a_conflict_naming_why(writer):
    schedule = made(writer)
    Schedule.objects.filter(pk=schedule["id"]).update(payload={"steps": "broken since"})
    error = assert_error(writer.post(f"/api/v1/schedules/{schedule['id']}/run"), 409, "job_refused")
    assert "steps" in error["message"] and not Job.objects.exists()


def test_writes_need_an_admin_and_reads_any_token_of_the_tenant(writer, reader, make_token, olga, globex, acme):
    schedule = made(writer)
    row, secret = make_token(user=olga, name="ops")
    ops = Caller(Client(), secret, row)
    assert ops.get(f"/api/v1/schedules/{schedule['id']}").status_code == 200
    for method, path, body in [("POST", "/api/v1/schedules", {**NIGHTLY, "name": "other"}),
                               ("PATCH", f"/api/v1/schedules/{schedule['id']}", {"priority": 1}),
                               ("POST", f"/api/v1/schedules/{schedule['id']}/pause", None),
                               ("POST", f"/api/v1/schedules/{schedule['id']}/run", None),
                               ("DELETE", f"/api/v1/schedules/{schedule['id']}", None)]:
        error = assert_error(ops.request(method, path, body), 403)
        assert "olga" in error["message"] and "admin" in error["message"]
        assert_error(reader.request(method, path, body), 403, "insufficient_scope")
    assert Schedule.objects.get().priority == 7 and Schedule.objects.get().enabled and not Job.objects.exists()
    refused = AuditEvent.objects.filter(state=AuditState.REFUSED, actor_name__contains=row.prefix)
    assert sorted(refused.values_list("action", flat=True)) == sorted([
        AuditAction.SCHEDULE_ADD, AuditAction.SCHEDULE_CHANGE, AuditAction.SCHEDULE_PAUSE,
        AuditAction.SCHEDULE_RUN_NOW, AuditAction.SCHEDULE_DELETE])  # olga's five, each on the record
    theirs = Schedule.objects.create(tenant=globex, name="theirs", kind="diagnostics.ping", cron="@daily")
    for method, suffix in [("GET", ""), ("PATCH", ""), ("POST", "/run"), ("DELETE", "")]:
        assert_error(writer.request(method, f"/api/v1/schedules/{theirs.pk}{suffix}", {} if method == "PATCH" else None),
                     404)
    system = Schedule.objects.create(tenant=None, name="system", kind="diagnostics.ping", cron="@daily")
    assert_error(writer.get(f"/api/v1/schedules/{system.pk}"), 404)
    assert [entry["name"] for entry in writer.get("/api/v1/schedules").json()] == ["nightly ping"]
    assert Schedule.objects.filter(pk__in=[theirs.pk, system.pk]).count() == 2


def test_the_admin_form_refuses_what_the_api_refuses(client, alice, acme):
    client.force_login(alice)
    response = client.post("/admin/schedules/schedule/add/", {
        "tenant": acme.pk, "name": "x", "kind": "diagnostics.ping", "payload": '{"steps": "two"}', "priority": 5,
        "cron": "@every 5s", "timezone": "UTC", "misfire_policy": "once", "enabled": "on"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "payload.steps:" in errors["payload"][0] and "at most every 10 seconds" in errors["cron"][0]
    assert not Schedule.objects.exists()


def test_the_list_reads_every_schedules_last_run_in_one_query(writer, acme):
    def listed() -> tuple[int, list]:
        with CaptureQueriesContext(connection) as queries:
            body = writer.get("/api/v1/schedules").json()
        return len(queries), body

    made(writer)
    writer.post(f"/api/v1/schedules/{Schedule.objects.get().pk}/run")
    one, _ = listed()
    for n in range(4):
        schedule = made(writer, {**NIGHTLY, "name": f"nightly {n}"})
        writer.post(f"/api/v1/schedules/{schedule['id']}/run")
    five, body = listed()
    assert five == one and len(body) == 5
    assert all(entry["last_run"]["outcome"] == RunOutcome.MANUAL and entry["last_run"]["job"] for entry in body)
