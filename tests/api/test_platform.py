"""Platform tokens: made by superusers, tied to no tenant, for operators' runbooks and monitoring. They read
every queue, tenant and figure and pause queues; they reach no tenant's jobs; every call is an audit event
naming the token; they end when their maker stops being a superuser. And a tenant's own figures."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from jobs import enqueue, relay
from jobs.api.models import Scope
from jobs.api.services import api_token_create
from jobs.models import AuditAction, AuditEvent, AuditState, Job, QueueState, Status
from jobs.staff import staff_queue_pause
from tests.api.conftest import Caller, assert_error
from tests.jobs import kinds  # noqa: F401 (registers the kinds limited across tenants)

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform(make_token, root) -> Caller:
    row, secret = make_token(platform=True, user=root, name="runbooks")
    return Caller(Client(), secret, row)


def finished(tenant, status: str, count: int) -> None:
    now = timezone.now()
    for _ in range(count):
        job = enqueue("diagnostics.ping", tenant=tenant, payload={})
        Job.objects.filter(pk=job.pk).update(status=status, started_at=now, finished_at=now, updated_at=now)


def test_it_reads_every_tenants_queues_and_figures(platform, acme, globex):
    enqueue("diagnostics.ping", tenant=acme, payload={})
    enqueue("diagnostics.ping", tenant=globex, payload={})
    finished(acme, Status.SUCCEEDED, 3)
    finished(globex, Status.FAILED, 1)
    queues = {row["name"]: row for row in platform.get("/api/v1/platform/queues").json()}
    default = queues["default"]
    assert default["counts"]["queued"] == 2 and default["failed_last_day"] == 1 and default["paused"] is False
    assert {row["tenant"]: row["counts"]["queued"] for row in default["tenants"]} == {"Acme Corp": 1, "Globex Inc": 1}
    tenants = {row["slug"]: row for row in platform.get("/api/v1/platform/tenants").json()}
    assert (tenants["acme"]["counts"]["queued"], tenants["globex"]["failed_last_hour"]) == (1, 1)
    assert tenants["acme"]["concurrency_limit"] == 50 and tenants["acme"]["paused"] is False
    stats = platform.get("/api/v1/platform/stats", {"range": "1h"}).json()
    assert (stats["range"], stats["succeeded"], stats["failed"], stats["failure_rate"]) == ("1h", 3, 1, 0.25)
    assert stats["kinds"][0]["kind"] == "diagnostics.ping" and stats["run_p50"] == {"at_most_seconds": 0.01}
    assert_error(platform.get("/api/v1/platform/stats", {"range": "1y"}), 422, field="range")
    assert platform.get("/api/v1/platform/limits").json() == [
        {"on": "kind", "name": "tests.global_capped", "concurrency": 2, "rate": None, "busy": 0, "waiting": 0},
        {"on": "kind", "name": "tests.global_rated", "concurrency": None, "rate": 3, "busy": 0, "waiting": 0}]
    token = platform.get("/api/v1/token").json()
    assert (token["platform"], token["tenant"]) == (True, None)


def test_every_call_is_audited_with_the_tokens_name(platform, root):
    platform.get("/api/v1/platform/queues")
    platform.get("/api/v1/platform/tenants")
    platform.post("/api/v1/queues/default/pause", {"reason": "maintenance"})
    events = list(AuditEvent.objects.exclude(action=AuditAction.API_TOKEN_CREATE).order_by("pk"))
    assert [(event.action, event.state) for event in events] == [
        (AuditAction.API_READ, AuditState.DONE), (AuditAction.API_READ, AuditState.DONE),
        (AuditAction.PAUSE_QUEUE, AuditState.DONE)]
    assert all(event.actor == root and f"API token {platform.row.prefix}" in event.actor_name for event in events)
    assert "GET /api/v1/platform/queues" in events[0].target and events[2].reason == "maintenance"


def test_it_pauses_and_resumes_a_queue_for_every_tenant(platform, acme, globex, django_capture_on_commit_callbacks):
    paused = platform.post("/api/v1/queues/default/pause")
    assert paused.status_code == 200 and paused.json()["action"] == AuditAction.PAUSE_QUEUE
    assert QueueState.objects.get(name="default").paused_at is not None
    relay.forget_paused_cache()
    held = [enqueue("diagnostics.ping", tenant=tenant, payload={}) for tenant in (acme, globex)]
    assert {Job.objects.get(pk=job.pk).status for job in held} == {Status.PENDING}
    assert {row["name"]: row["paused"] for row in platform.get("/api/v1/platform/queues").json()}["default"] is True
    with django_capture_on_commit_callbacks(execute=True):  # the relay hands them over once resumed
        assert platform.post("/api/v1/queues/default/resume").status_code == 200
    assert {Job.objects.get(pk=job.pk).status for job in held} == {Status.QUEUED}
    assert_error(platform.post("/api/v1/queues/nope/pause"), 404)


def test_it_reaches_no_tenants_jobs_and_a_tenant_token_reaches_no_platform(platform, writer, acme):
    job = enqueue("diagnostics.ping", tenant=acme, payload={})
    for method, path in [("GET", "/api/v1/jobs"), ("GET", f"/api/v1/jobs/{job.pk}"), ("POST", "/api/v1/jobs"),
                         ("POST", f"/api/v1/jobs/{job.pk}/cancel"), ("GET", "/api/v1/queues"),
                         ("GET", "/api/v1/schedules"), ("POST", "/api/v1/tenant/pause"), ("GET", "/api/v1/tenant/stats")]:
        assert_error(platform.request(method, path, {"kind": "diagnostics.ping"} if path == "/api/v1/jobs" else None),
                     403, "platform_token")
    refused = AuditEvent.objects.filter(actor_name__contains=platform.row.prefix, state=AuditState.REFUSED)
    assert refused.count() == 8
    for method, path in [("GET", "/api/v1/platform/queues"), ("GET", "/api/v1/platform/limits"),
                         ("GET", "/api/v1/platform/tenants"),
                         ("GET", "/api/v1/platform/stats"), ("POST", "/api/v1/queues/default/pause"),
                         ("POST", "/api/v1/queues/default/resume")]:
        assert_error(writer.request(method, path), 403, "needs_platform_token")
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED and not QueueState.objects.exists()


def test_a_read_only_platform_token_cannot_pause_and_the_refusal_is_recorded(make_token, root):
    row, secret = make_token(platform=True, user=root, name="monitoring", scope=Scope.READ)
    reader = Caller(Client(), secret, row)
    assert reader.get("/api/v1/platform/queues").status_code == 200
    assert_error(reader.post("/api/v1/queues/default/pause"), 403, "insufficient_scope")
    assert not QueueState.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PAUSE_QUEUE, state=AuditState.REFUSED,
                                     actor_name__contains=row.prefix).count() == 1


def test_it_ends_when_its_maker_is_no_longer_a_superuser(platform, root):
    get_user_model().objects.filter(pk=root.pk).update(is_superuser=False)
    assert_error(platform.get("/api/v1/platform/queues"), 401)
    assert_error(platform.post("/api/v1/queues/default/pause"), 401)
    assert not QueueState.objects.exists()


def test_only_superusers_make_platform_tokens(alice, acme, client):
    with pytest.raises(PermissionDenied):
        api_token_create(tenant=None, name="sneaky", scope=Scope.READ_WRITE, user=alice)
    client.force_login(alice)
    response = client.post("/admin/api/apitoken/add/", {"tenant": "", "name": "sneaky", "scope": "read"})
    assert response.status_code == 200 and "tenant" in response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE).exists()


def test_a_superuser_makes_one_in_the_admin_and_it_is_listed_as_platform(client, root):
    client.force_login(root)
    response = client.post("/admin/api/apitoken/add/", {"tenant": "", "name": "runbooks", "scope": "read"})
    assert response.status_code == 200 and b"tj_" in response.content
    listing = client.get("/admin/api/apitoken/").content.decode()
    assert "runbooks" in listing and "Platform" in listing


def test_a_queue_pause_by_someone_not_a_superuser_is_refused_and_recorded(alice):
    with pytest.raises(PermissionDenied):
        staff_queue_pause(name="default", user=alice)
    assert not QueueState.objects.exists()
    assert AuditEvent.objects.get(action=AuditAction.PAUSE_QUEUE).state == AuditState.REFUSED


def test_a_tenants_token_reads_its_own_figures(writer, acme, globex):
    enqueue("diagnostics.ping", tenant=acme, payload={})
    finished(acme, Status.SUCCEEDED, 2)
    finished(globex, Status.FAILED, 5)
    stats = writer.get("/api/v1/tenant/stats", {"range": "24h"}).json()
    assert (stats["slug"], stats["counts"]["queued"], stats["failed_last_day"]) == ("acme", 1, 0)
    figures = stats["figures"]
    assert (figures["succeeded"], figures["failed"], figures["range"]) == (2, 0, "24h")
    assert [kind["kind"] for kind in figures["kinds"]] == ["diagnostics.ping"]


def test_a_tenant_admin_neither_sees_nor_revokes_a_platform_token(platform, alice, client):
    client.force_login(alice)
    assert "runbooks" not in client.get("/admin/api/apitoken/").content.decode()
    assert client.get(f"/admin/api/apitoken/{platform.row.pk}/change/").status_code in (302, 403, 404)
    assert client.post(f"/admin/api/apitoken/{platform.row.pk}/revoke/").status_code in (302, 403, 404)
    client.post("/admin/api/apitoken/", {"action": "revoke_tokens", "_selected_action": [platform.row.pk]})
    platform.row.refresh_from_db()
    assert platform.row.revoked_at is None and platform.get("/api/v1/platform/queues").status_code == 200
