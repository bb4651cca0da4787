"""/metrics: bearer token only, the engine's families with bounded tenant labels, django-rq's own."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Attempt, Job, Outcome, Status
from jobs.ops.models import Incident
from tenants.models import Tenant
from tests.ops.conftest import jobs_in

pytestmark = pytest.mark.django_db

TOKEN = "m" * 40


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token: str = TOKEN) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, suffix: str = "") -> list:
    return [sample for sample in family.samples if sample.name == family.name + suffix]


def test_it_is_not_there_without_a_configured_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_it_needs_the_token(client, token):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert b"tracked_jobs" not in missing.content
    for header in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer été"):
        assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 401, header
    assert client.get(f"/metrics?token={TOKEN}").status_code == 401  # never in the URL (access logs)
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_it_labels_the_busiest_tenants_and_folds_the_rest_into_other(client, token, settings):
    settings.OPS_METRICS_TOP_TENANTS = 2
    tenants = [Tenant.objects.create(name=f"T{n}", slug=f"t{n}") for n in range(4)]
    for count, tenant in zip((5, 4, 2, 1), tenants, strict=True):
        jobs_in(tenant, Status.PENDING, count)
    jobs_in(None, Status.PENDING, 2)
    jobs_in(tenants[2], Status.SUCCEEDED, 1)
    families = scrape(client)

    unfinished = samples(families["tracked_jobs_unfinished"])
    assert {s.labels["tenant"] for s in unfinished} == {"t0", "t1", "other", "system"}
    by_tenant = {s.labels["tenant"]: s.value for s in unfinished}
    assert by_tenant == {"t0": 5, "t1": 4, "other": 3, "system": 2}
    assert {s.labels["queue"] for s in unfinished} == {"default"}
    assert {s.labels["kind"] for s in unfinished} == {"diagnostics.ping"}
    [done] = samples(families["tracked_jobs_finished_in_window"])
    assert done.labels == {"queue": "default", "kind": "diagnostics.ping", "status": "succeeded", "tenant": "other"}
    pending = {s.labels["queue"]: s.value for s in samples(families["tracked_jobs_pending_handover"])}
    assert pending == {"critical": 0, "high": 0, "default": 14, "low": 0}


def test_it_exposes_durations_attempts_waiting_workers_and_incidents(client, token, acme, settings):
    settings.OPS_METRICS_WINDOW_SECONDS = 3600
    now = timezone.now()
    quick, slow = jobs_in(acme, Status.SUCCEEDED, 2)
    Job.objects.filter(pk=quick.pk).update(created_at=now - timedelta(seconds=3), finished_at=now)
    Job.objects.filter(pk=slow.pk).update(created_at=now - timedelta(seconds=400), finished_at=now)
    Attempt.objects.create(job=quick, number=1, started_at=now - timedelta(seconds=2), ended_at=now,
                           outcome=Outcome.SUCCEEDED)
    Attempt.objects.create(job=slow, number=1, started_at=now - timedelta(seconds=40), ended_at=now,
                           outcome=Outcome.FAILED)
    Attempt.objects.create(job=slow, number=2, started_at=now - timedelta(seconds=20), ended_at=now,
                           outcome=Outcome.SUCCEEDED)
    [old] = jobs_in(acme, Status.SUCCEEDED, 1, ago=timedelta(hours=3))
    Attempt.objects.create(job=old, number=1, started_at=now - timedelta(hours=3, seconds=5),
                           ended_at=now - timedelta(hours=3), outcome=Outcome.SUCCEEDED)  # out of the window
    jobs_in(acme, Status.QUEUED, 1, ago=timedelta(seconds=90))
    Incident.objects.create(check_name="waiting", summary="12000 job(s) waiting")
    families = scrape(client)

    jobs = families["tracked_jobs_job_duration_seconds"]
    assert jobs.type == "histogram" and "sliding window" in jobs.documentation
    buckets = {s.labels["le"]: s.value for s in samples(jobs, "_bucket")}
    assert (buckets["5.0"], buckets["300.0"], buckets["900.0"], buckets["+Inf"]) == (1, 1, 2, 2)
    [job_seconds] = samples(families["tracked_jobs_job_duration_seconds_gsum"])
    assert job_seconds.value == pytest.approx(403, abs=1)

    attempts = families["tracked_jobs_attempt_duration_seconds"]
    by_outcome = {(s.labels["outcome"], s.labels["le"]): s.value for s in samples(attempts, "_bucket")}
    assert by_outcome[("succeeded", "+Inf")] == 2 and by_outcome[("succeeded", "2.5")] == 1
    assert by_outcome[("failed", "30.0")] == 0 and by_outcome[("failed", "60.0")] == 1
    counted = {s.labels["outcome"]: s.value for s in samples(families["tracked_jobs_attempts_in_window"])}
    assert counted == {"succeeded": 2, "failed": 1}

    oldest = {s.labels["queue"]: s.value for s in samples(families["tracked_jobs_oldest_waiting_seconds"])}
    assert 90 <= oldest["default"] < 120 and oldest["high"] == 0
    assert {s.labels["queue"]: s.value for s in samples(families["tracked_jobs_workers"])} == {
        "critical": 0, "high": 0, "default": 0, "low": 0}
    assert samples(families["tracked_jobs_workers_live"])[0].value == 0
    assert samples(families["tracked_jobs_open_incidents"])[0].labels == {"check": "waiting"}
    assert samples(families["tracked_jobs_redis_up"])[0].value == 1
    assert samples(families["tracked_jobs_database_up"])[0].value == 1


def test_it_includes_django_rqs_own_metrics(client, token, acme, django_capture_on_commit_callbacks):
    from jobs import enqueue

    with django_capture_on_commit_callbacks(execute=True):
        enqueue("diagnostics.ping", tenant=acme, payload={})  # handed to RQ: one job in RQ's default queue
    families = scrape(client)
    assert {"rq_workers", "rq_job_successful", "rq_job_failed", "rq_working_seconds", "rq_jobs"} <= set(families)
    rq_jobs = {(s.labels["queue"], s.labels["status"]): s.value for s in samples(families["rq_jobs"])}
    assert rq_jobs[("default", "queued")] == 1 and rq_jobs[("low", "queued")] == 0


def test_it_still_answers_with_redis_down(client, token, acme, redis_server):
    jobs_in(acme, Status.PENDING, 2)
    redis_server.stop()
    families = scrape(client)
    assert samples(families["tracked_jobs_redis_up"])[0].value == 0
    assert "rq_jobs" not in families and "tracked_jobs_workers" not in families
    assert sum(s.value for s in samples(families["tracked_jobs_unfinished"])) == 2


def test_it_answers_head_for_probes_and_warns_of_a_short_token_at_deploy(client, settings):
    from django.core import checks

    assert client.head("/healthz").status_code == 200
    settings.METRICS_TOKEN = "short"
    assert "ops.W001" in [problem.id for problem in checks.run_checks(include_deployment_checks=True)]
    settings.METRICS_TOKEN = TOKEN
    assert "ops.W001" not in [problem.id for problem in checks.run_checks(include_deployment_checks=True)]
