"""/healthz and /readyz: ok, degraded with Redis stopped or a threshold crossed, down without the
database; live workers per queue from a real rqworker; counts only, and bounded queries."""
from __future__ import annotations

import json
import re
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import enqueue
from jobs.models import Job, Status
from tests.ops.conftest import jobs_in
from tests.support import FAST_ENGINE_ENV, Process, wait_for

pytestmark = pytest.mark.django_db


def readyz(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_it_answers_healthz_without_touching_the_database_or_redis(client, redis_server, django_assert_num_queries):
    redis_server.stop()
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_it_is_ok_when_everything_answers_and_shows_counts_only(client, acme, globex):
    jobs_in(acme, Status.SUCCEEDED, 3)
    jobs_in(globex, Status.SCHEDULED, 2, payload={"secret": "globex-only"})
    status, body = readyz(client)
    assert status == 200 and body["status"] == "ok", body
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "workers", "waiting", "pending", "delayed", "active",
                           "oldest_waiting", "failures", "failure_rate"}
    assert all(check["status"] == "ok" and check["reason"] for check in checks.values())
    assert checks["delayed"]["value"] == 2 and checks["delayed"]["threshold"] == 5000
    assert checks["workers"]["queues"] == {"critical": 0, "high": 0, "default": 0, "low": 0}
    text = json.dumps(body)
    for secret in ("acme", "Acme", "globex", "Globex", "globex-only", str(acme.pk) + '"'):
        assert secret not in text


def test_it_is_degraded_not_down_with_redis_stopped_and_counts_the_pending_hand_overs(client, acme, redis_server):
    redis_server.stop()
    jobs_in(acme, Status.PENDING, 4)
    status, body = readyz(client)
    assert status == 200 and body["status"] == "degraded", body
    redis = body["checks"]["redis"]
    assert redis["status"] == "degraded" and "unreachable" in redis["reason"]
    assert "127.0.0.1" not in redis["reason"] and str(redis_server.port) not in json.dumps(body)
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["pending"] == {"status": "ok", "value": 4, "threshold": 5000,
                                         "reason": "4 job(s) stored and waiting to be handed over to RQ."}
    assert body["checks"]["workers"]["status"] == "unknown"


def test_it_is_quick_with_redis_stopped(client, redis_server, settings):
    import time

    settings.OPS_CHECK_TIMEOUT = 0.3
    redis_server.stop()
    started = time.monotonic()
    readyz(client)
    assert time.monotonic() - started < 2


def test_it_is_degraded_when_a_threshold_is_crossed(client, acme, settings):
    settings.OPS_MAX_WAITING = 2
    jobs_in(acme, Status.PENDING, 2)
    jobs_in(acme, Status.QUEUED, 1)
    status, body = readyz(client)
    assert status == 200 and body["status"] == "degraded"
    waiting = body["checks"]["waiting"]
    assert waiting["status"] == "degraded" and waiting["value"] == 3 and waiting["threshold"] == 2
    assert "the threshold is 2" in waiting["reason"]


@pytest.mark.parametrize("check, setting, status, count", [
    ("failures", "OPS_MAX_FAILED_PER_HOUR", Status.FAILED, 3),
    ("delayed", "OPS_MAX_DELAYED", Status.RETRYING, 3),
    ("active", "OPS_MAX_ACTIVE", Status.RUNNING, 3),
    ("pending", "OPS_MAX_PENDING", Status.PENDING, 3),
])
def test_it_is_down_when_a_check_named_in_ops_down_checks_crosses(client, acme, settings, check, setting, status,
                                                                  count):
    settings.OPS_DOWN_CHECKS = [check]
    setattr(settings, setting, count - 1)
    jobs_in(acme, status, count)
    code, body = readyz(client)
    assert code == 503 and body["status"] == "down"
    assert body["checks"][check]["status"] == "down" and body["checks"][check]["value"] == count


def test_it_counts_only_the_last_hours_failures_and_their_rate(client, acme, settings):
    settings.OPS_MAX_FAILURE_RATE = 0.5
    jobs_in(acme, Status.FAILED, 15)
    jobs_in(acme, Status.FAILED, 5, ago=timedelta(hours=2))
    jobs_in(acme, Status.SUCCEEDED, 10)
    _, body = readyz(client)
    assert body["checks"]["failures"]["value"] == 15 and body["checks"]["failures"]["status"] == "ok"
    rate = body["checks"]["failure_rate"]
    assert rate["value"] == 0.6 and rate["status"] == "degraded" and "60.0% of 25" in rate["reason"]


def test_it_reports_how_long_the_oldest_job_has_waited(client, acme, settings):
    settings.OPS_MAX_WAITING_AGE_SECONDS = 600
    jobs_in(acme, Status.QUEUED, 1, ago=timedelta(minutes=20))
    jobs_in(acme, Status.PENDING, 1, ago=timedelta(minutes=1))
    jobs_in(acme, Status.SCHEDULED, 1, ago=timedelta(hours=5))  # waits for its time, not for a worker
    _, body = readyz(client)
    oldest = body["checks"]["oldest_waiting"]
    assert oldest["status"] == "degraded" and 1200 <= oldest["value"] < 1260


@pytest.mark.django_db(transaction=True)
def test_it_is_down_when_the_database_is_unreachable(client):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    real = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = port  # nothing listens there
    try:
        status, body = readyz(client)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real
    assert status == 503 and body["status"] == "down"
    assert body["checks"]["database"]["status"] == "down" and "unreachable" in body["checks"]["database"]["reason"]
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["waiting"] == {"status": "unknown", "reason": "Not checked: the database is unreachable."}


def test_it_reads_a_bounded_number_of_index_entries(client, acme, settings):
    settings.OPS_MAX_WAITING = 3
    jobs_in(acme, Status.PENDING, 6)
    with CaptureQueriesContext(connection) as queries:
        _, body = readyz(client)
    assert body["checks"]["waiting"]["value"] == 6  # under the cap: exact
    job_queries = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    # A fixed number of statements, whatever the size of the table (4 are "any job queued here?" for the
    # queues without a worker).
    assert len(queries.captured_queries) <= 20 and job_queries
    for sql in job_queries:
        # A count reads at most its cap of rows; anything else is one row or an existence check.
        assert re.search(r"LIMIT \d+", sql), sql
    assert any("statement_timeout" in q["sql"] for q in queries.captured_queries)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_counts_live_workers_per_queue_from_a_real_rqworker(client, acme, private_redis, processes):
    worker = Process("rqworker", "high", "low", redis_url=private_redis.url, env=FAST_ENGINE_ENV)
    processes.append(worker)

    def workers() -> dict:
        return readyz(client)[1]["checks"]["workers"]

    wait_for(lambda: workers()["queues"]["high"] == 1, timeout=30, what="the worker to register")
    assert workers() == {"status": "ok", "reason": "1 live worker(s); every queue with queued jobs has one.",
                         "live": 1, "queues": {"critical": 0, "high": 1, "default": 0, "low": 1}}
    jobs_in(acme, Status.QUEUED, 1)  # in "default", which nobody serves
    check = workers()
    assert check["status"] == "degraded" and "default" in check["reason"] and "high" not in check["reason"]
    assert readyz(client)[0] == 200

    worker.terminate()
    wait_for(lambda: workers()["queues"]["high"] == 0, timeout=30, what="the stopped worker to leave the registry")
    assert Job.objects.filter(status=Status.QUEUED).count() == 1


def test_probes_answer_a_platform_that_asks_by_address_while_other_pages_refuse_it(client):
    # Django refuses a Host outside ALLOWED_HOSTS (a pod IP, say) for every page, but not for the probes.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    status = client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code
    assert status == 200
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert client.post("/healthz").status_code == 405
