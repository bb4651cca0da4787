"""The API's operations beyond enqueue, retry and cancel: stop, remove a record, bulk enqueue and the tenant's
kill switch; each checks the token maker's role at use and leaves an audit event naming the token."""
from __future__ import annotations

from django.test import Client
from django.utils import timezone

from jobs import enqueue
from jobs.api.models import Scope
from jobs.models import AuditAction, AuditEvent, Job, Status
from tenants.models import Tenant
from tests.api.conftest import Caller


def operator(make_token, olga) -> Caller:
    row, secret = make_token(scope=Scope.READ_WRITE, user=olga, name="ops")
    return Caller(Client(), secret, row)


def test_a_running_job_is_stopped_and_a_waiting_one_is_a_conflict(writer, acme):
    running = enqueue("diagnostics.ping", tenant=acme, payload={})
    Job.objects.filter(pk=running.pk).update(status=Status.RUNNING, started_at=timezone.now())
    stopped = writer.post(f"/api/v1/jobs/{running.pk}/stop", {"reason": "runaway"})
    assert stopped.status_code == 200, stopped.content
    assert Job.objects.get(pk=running.pk).stop_requested_at is not None
    event = AuditEvent.objects.get(action=AuditAction.STOP)
    assert event.reason == "runaway" and f"API token {writer.row.prefix}" in event.actor_name
    waiting = enqueue("diagnostics.ping", tenant=acme, payload={})
    conflict = writer.post(f"/api/v1/jobs/{waiting.pk}/stop")
    assert conflict.status_code == 409 and "only a running job can be stopped" in conflict.json()["error"]["message"]


def test_a_finished_jobs_record_is_removed_by_an_admins_token_only(writer, make_token, olga, acme):
    done = enqueue("diagnostics.ping", tenant=acme, payload={})
    Job.objects.filter(pk=done.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    refused = operator(make_token, olga).request("DELETE", f"/api/v1/jobs/{done.pk}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_role"
    assert Job.objects.filter(pk=done.pk).exists()
    assert writer.request("DELETE", f"/api/v1/jobs/{done.pk}").status_code == 204
    assert not Job.objects.filter(pk=done.pk).exists()
    assert AuditEvent.objects.filter(action=AuditAction.DELETE, done=1).exists()
    unfinished = enqueue("diagnostics.ping", tenant=acme, payload={})
    assert writer.request("DELETE", f"/api/v1/jobs/{unfinished.pk}").status_code == 409
    assert writer.request("DELETE", f"/api/v1/jobs/{done.pk}").status_code == 404


def test_bulk_enqueue_is_all_or_nothing_naming_the_bad_payload(writer, acme):
    made = writer.post("/api/v1/jobs/bulk", {"kind": "diagnostics.ping", "priority": 7,
                                             "payloads": [{"steps": n} for n in range(1, 4)]})
    assert made.status_code == 201 and made.json()["count"] == 3
    jobs = Job.objects.filter(pk__in=made.json()["ids"])
    assert sorted(job.payload["steps"] for job in jobs) == [1, 2, 3] and {job.priority for job in jobs} == {7}
    bad = writer.post("/api/v1/jobs/bulk", {"kind": "diagnostics.ping",
                                            "payloads": [{"steps": 1}, {"steps": 2}, {"steps": "many"}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "payloads[2].steps"
    too_many = writer.post("/api/v1/jobs/bulk", {"kind": "diagnostics.ping", "payloads": [{}] * 1001})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "payloads"
    not_public = writer.post("/api/v1/jobs/bulk", {"kind": "email.send", "payloads": [{}]})
    assert not_public.status_code == 422 and not_public.json()["error"]["field"] == "kind"
    assert Job.objects.count() == 3


def test_the_tenants_kill_switch_needs_an_admin_and_is_audited_with_the_token(writer, make_token, olga, acme):
    assert operator(make_token, olga).post("/api/v1/tenant/pause").status_code == 403
    paused = writer.post("/api/v1/tenant/pause", {"reason": "incident 42"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert Tenant.objects.get(pk=acme.pk).paused_at is not None
    event = AuditEvent.objects.get(action=AuditAction.TENANT_PAUSE)
    assert event.reason == "incident 42" and f"API token {writer.row.prefix}" in event.actor_name
    resumed = writer.post("/api/v1/tenant/resume")
    assert resumed.json() == {"slug": "acme", "paused": False, "paused_at": None}


def test_old_finished_jobs_are_cleaned_by_an_admins_token_now_or_in_the_background(writer, make_token, olga, acme,
                                                                                   globex, settings):
    old = timezone.now() - timezone.timedelta(days=10)
    mine = [enqueue("diagnostics.ping", tenant=acme, payload={}) for _ in range(3)]
    theirs = enqueue("diagnostics.ping", tenant=globex, payload={})
    Job.objects.filter(pk__in=[job.pk for job in [*mine, theirs]]).update(status=Status.FAILED, finished_at=old,
                                                                         updated_at=old)
    Job.objects.filter(pk=mine[0].pk).update(pinned=True)
    assert operator(make_token, olga).post("/api/v1/jobs/clean", {"days": 7}).status_code == 403
    cleaned = writer.post("/api/v1/jobs/clean", {"days": 7, "statuses": ["failed"], "reason": "tidy"})
    assert cleaned.status_code == 200, cleaned.content
    assert (cleaned.json()["done"], cleaned.json()["state"]) == (2, "done")
    assert set(Job.objects.values_list("pk", flat=True)) == {mine[0].pk, theirs.pk}  # pinned, and globex's
    settings.JOBS_ADMIN_BULK_THRESHOLD = 1
    for _ in range(2):
        Job.objects.filter(pk=enqueue("diagnostics.ping", tenant=acme, payload={}).pk).update(
            status=Status.SUCCEEDED, finished_at=old, updated_at=old)
    later = writer.post("/api/v1/jobs/clean", {"days": 7})
    assert later.status_code == 202 and later.json()["state"] == "running"
    assert Job.objects.get(pk=later.json()["background_job"]).kind == "jobs.staff_action"


def test_a_queues_waiting_jobs_of_the_token_tenant_are_cancelled_and_no_one_elses(writer, acme, globex):
    mine = enqueue("diagnostics.ping", tenant=acme, payload={})
    theirs = enqueue("diagnostics.ping", tenant=globex, payload={})
    emptied = writer.post("/api/v1/queues/default/empty", {"reason": "backlog from a bad deploy"})
    assert emptied.status_code == 200 and emptied.json()["done"] == 1
    assert Job.objects.get(pk=mine.pk).status == Status.CANCELLED
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED
    assert writer.post("/api/v1/queues/nope/empty").status_code == 404


def test_a_batch_and_a_chain_are_started_listed_and_read_by_the_tokens_tenant_only(writer, make_token, acme,
                                                                                  globex, charlie):
    batch = writer.post("/api/v1/batches", {"name": "nightly pings", "kind": "diagnostics.ping",
                                            "payloads": [{"steps": 1}, {"steps": 2}]})
    assert batch.status_code == 201, batch.content
    assert (batch.json()["total"], batch.json()["chain"], batch.json()["counts"]["queued"]) == (2, False, 2)
    chain = writer.post("/api/v1/chains", {"name": "onboarding", "steps": [
        {"kind": "diagnostics.ping", "payload": {"steps": 1}}, {"kind": "diagnostics.ping", "payload": {}}]})
    assert chain.status_code == 201 and chain.json()["chain"] is True
    assert chain.json()["counts"]["queued"] == 1 and chain.json()["counts"]["scheduled"] == 1  # the second waits
    listed = writer.get("/api/v1/batches").json()
    assert [row["name"] for row in listed] == ["onboarding", "nightly pings"]
    assert writer.get(f"/api/v1/batches/{batch.json()['id']}").json()["first_job"] == batch.json()["first_job"]
    row, secret = make_token(tenant=globex, user=charlie, name="theirs")
    theirs = Caller(Client(), secret, row)
    assert theirs.get(f"/api/v1/batches/{batch.json()['id']}").status_code == 404
    assert theirs.get("/api/v1/batches").json() == []
    bad = writer.post("/api/v1/chains", {"name": "x", "steps": [{"kind": "diagnostics.ping", "payload": {}},
                                                                 {"kind": "diagnostics.ping",
                                                                  "payload": {"steps": "two"}}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("steps[1]")
    blank = writer.post("/api/v1/batches", {"name": " ", "kind": "diagnostics.ping", "payloads": [{}]})
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "name"
