"""Nothing read from Redis is unpickled, and nothing planted in Redis runs or calls out, in any process:
the web (dashboard pages, stats.json), the reconciler, the scheduler, workers and management commands."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import Client
from django_rq.settings import get_queues_map

from jobs import enqueue, transport
from jobs.models import Job, Status
from jobs.reconciler import reconcile
from jobs.transport import ENTRY_POINT
from tests.jobs import kinds  # noqa: F401  (registers the tests. kinds)
from tests.jobs.helpers import work
from tests.planted import QUEUES, ConnectionTrap, data_blob, plant, plant_pickles
from tests.support import FAST_ENGINE_ENV, ROOT, Process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKEN = "dashboard-token-" + "x" * 32
CALLBACK = "tests.planted.touch_marker"


@pytest.fixture
def markers(tmp_path, monkeypatch):
    folder = tmp_path / "markers"
    folder.mkdir()
    monkeypatch.setenv("PLANTED_MARKER_DIR", str(folder))  # for in-process callbacks and for subprocesses
    return folder


def dashboard_pages(planted: list[tuple[str, str, str]]) -> list[str]:
    pages = ["/admin/rq/"]
    for index in get_queues_map().values():
        base = f"/admin/rq/queues/{index}/"
        pages += [base, f"{base}details/", f"{base}finished/", f"{base}failed/", f"{base}scheduled/",
                  f"{base}started/", f"{base}deferred/", f"/admin/rq/workers/{index}/",
                  f"/admin/rq/schedulers/{index}/", f"{base}requeue-all/", f"{base}failed/clear/", f"{base}empty/"]
    for queue, _, job_id in planted:
        base = f"/admin/rq/queues/{get_queues_map()[queue]}/{job_id}/"
        pages += [base, f"{base}delete/", f"{base}requeue/"]
    return pages


def run_command(*args: str, redis_url: str) -> subprocess.CompletedProcess:
    from tests.support import database_url

    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url()}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_it_never_unpickles_a_job_planted_anywhere_in_redis_in_any_process(
        root, private_redis, markers, settings, processes):
    planted = plant_pickles(private_redis.client(), markers)
    settings.RQ_API_TOKEN = TOKEN
    web = Client(raise_request_exception=False)  # a planted job may give an error page; it must never run

    settings.METRICS_TOKEN = TOKEN
    for scraped in ("/admin/rq/stats.json", "/admin/rq/metrics", "/metrics"):  # no session: the bearer alone
        assert web.get(scraped, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200, scraped
    web.force_login(root)
    answered = {page: web.get(page).status_code for page in dashboard_pages(planted)}
    assert answered["/admin/rq/"] == 200 and answered["/admin/rq/queues/0/started/"] == 200
    reconcile()
    transport.get_scheduler().run(burst=True)  # one scheduler tick
    assert run_command("rqstats", redis_url=private_redis.url).returncode == 0
    worker = Process("rqworker", *QUEUES, "--burst", redis_url=private_redis.url, env=FAST_ENGINE_ENV)
    assert worker.popen.wait(timeout=90) == 0

    assert sorted(marker.name for marker in markers.iterdir()) == []
    assert "Refused RQ job pickle-data-queue-default from queue default" in worker.output()


def test_a_worker_drops_jobs_the_engine_did_not_make_without_running_or_calling_anything(
        acme, private_redis, markers, settings, processes):
    trap = ConnectionTrap()
    client = private_redis.client()
    real = enqueue("tests.echo", tenant=acme, payload={"text": "mine"})  # queued in RQ, as the engine made it
    # Someone adds webhooks and callbacks to the real job's copy in Redis ...
    client.hset(f"rq:job:{real.pk}", mapping={"webhooks": trap.webhooks(), "success_callback_name": CALLBACK,
                                              "failure_callback_name": CALLBACK, "stopped_callback_name": CALLBACK})
    # ... and plants jobs of their own: a foreign function; the engine's function for no record; RQ powers.
    calling_out = {"webhooks": trap.webhooks(), "failure_callback_name": CALLBACK, "success_callback_name": CALLBACK}
    plant(client, "foreign", data=data_blob("pathlib.Path.touch", [str(markers / "ran")]), **calling_out)
    plant(client, "no-record", data=data_blob(ENTRY_POINT, ["no-record"]), **calling_out)
    plant(client, "repeating", data=data_blob(ENTRY_POINT, ["repeating"]), repeats_left="5",
          repeat_intervals="[0]")
    plant(client, "dependent", data=data_blob(ENTRY_POINT, ["dependent"]), dependency_ids='["no-record"]')
    plant(client, "unreadable", created_at="not a date")
    # RQ's own clean-up of an abandoned execution, which any process runs on reading the registry, would
    # call the failure callback and send the webhooks.
    plant(client, "abandoned", where="expired-started", **calling_out)

    worker = Process("rqworker", *QUEUES, "--burst", redis_url=private_redis.url, env=FAST_ENGINE_ENV)
    assert worker.popen.wait(timeout=90) == 0
    settings.RQ_API_TOKEN = TOKEN
    assert Client().get("/admin/rq/stats.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    trap.close()

    assert trap.connections == 0 and list(markers.iterdir()) == []
    output = worker.output()
    for job_id in ("foreign", "no-record", "repeating", "dependent", "unreadable", real.pk):
        assert f"Refused RQ job {job_id} from queue" in output
    assert f"Refused RQ job {real.pk} from queue high: it carries callbacks" in output
    assert not client.exists(f"rq:job:{real.pk}", "rq:job:foreign", "rq:job:no-record", "rq:job:unreadable")
    # The real job was never run from the tampered copy; the reconciler hands it over again as the
    # engine makes it, and it runs once.
    real.refresh_from_db()
    assert (real.status, real.attempts) == (Status.QUEUED, 0)
    settings.JOBS_LOST_AFTER_SECONDS = 0
    assert reconcile().requeued_lost == 1
    work()
    real.refresh_from_db()
    assert (real.status, real.attempts, real.result["text"]) == (Status.SUCCEEDED, 1, "mine")
    assert trap.connections == 0 and list(markers.iterdir()) == []


def test_a_planted_rq_scheduler_entry_is_dropped_unread_and_the_tick_goes_on(acme, private_redis, markers):
    client = private_redis.client()
    delayed = enqueue("tests.echo", tenant=acme, payload={"text": "later"}, delay=60)
    Job.objects.filter(pk=delayed.pk).update(run_at=delayed.created_at)  # due now
    plant(client, "planted-entry", where="scheduler", data=data_blob("pathlib.Path.touch", [str(markers / "x")]),
          meta=b'{"queue_class_name": "tests.planted.touch_marker"}')
    plant(client, "unreadable-entry", where="scheduler", created_at="not a date")
    transport.get_scheduler().run(burst=True)
    entries = [raw.decode() for raw in client.zrange("rq:scheduler:scheduled_jobs", 0, -1)]
    assert entries and all(transport.schedule_of_entry(entry) for entry in entries)  # the cron schedules' own
    assert not client.exists("rq:job:planted-entry", "rq:job:unreadable-entry")
    assert transport.get_queue("high").job_ids == [str(delayed.pk)]  # the same tick relayed the due job
    assert list(markers.iterdir()) == []


def test_rq_pickles_nothing_in_this_process():
    from rq.serializers import DefaultSerializer, resolve_serializer

    from jobs.rq_lockdown import is_locked_down

    assert is_locked_down()
    assert resolve_serializer(None).dumps({"a": 1}) == b'{"a": 1}'
    assert resolve_serializer("pickle").loads(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError):
        DefaultSerializer.loads(__import__("pickle").dumps({"a": 1}))


def test_the_engine_keeps_no_job_in_rqs_failed_registry_unless_its_record_failed_for_good(acme):
    flaky = enqueue("tests.steered", tenant=acme, payload={"plan": ["fail", "succeed"]})
    doomed = enqueue("tests.steered", tenant=acme, payload={"plan": ["fail", "fail", "fail"]})
    failed_registry = transport.get_queue("default").failed_job_registry
    work()
    assert {flaky.pk, doomed.pk} == set(Job.objects.filter(status=Status.RETRYING).values_list("pk", flat=True))
    assert failed_registry.get_job_ids() == []  # both will be tried again: not failed
    for _ in range(3):
        Job.objects.filter(status=Status.RETRYING).update(run_at=flaky.created_at)
        reconcile()
        work()
    assert Job.objects.get(pk=flaky.pk).status == Status.SUCCEEDED
    assert Job.objects.get(pk=doomed.pk).status == Status.FAILED
    assert failed_registry.get_job_ids() == [str(doomed.pk)]
