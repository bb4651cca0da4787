"""End to end with real processes: forking workers, the scheduler, kill -9, Redis outages."""
from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path

import psycopg
import pytest
from django.db import transaction
from rq import Worker
from rq.exceptions import StopRequested
from rq.utils import now
from rq.worker import WorkerStatus

from jobs import enqueue, transport
from jobs.models import Batch, Job, Outcome, Status, Trigger
from jobs.services import job_stop
from jobs.workers import TrackedSimpleWorker
from tests.jobs.helpers import status_of
from tests.support import FAST_ENGINE_ENV, Process, RedisServer, database_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUES = ("critical", "high", "default", "low")


def worker(redis_url: str, *extra: str, env=None) -> Process:
    return Process("rqworker", *QUEUES, *extra, redis_url=redis_url, env={**FAST_ENGINE_ENV, **(env or {})})


def test_a_forking_worker_runs_jobs_with_progress_and_retries(acme, private_redis, processes):
    ok = enqueue("diagnostics.ping", tenant=acme, payload={"steps": 3})
    flaky = enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 1})
    processes.append(worker(private_redis.url))
    wait_for(lambda: status_of(ok) == Status.SUCCEEDED and status_of(flaky) == Status.SUCCEEDED,
             timeout=30, what="both jobs to succeed")
    ok.refresh_from_db()
    assert (ok.progress, ok.progress_message) == (100, "step 3 of 3")
    assert list(flaky.attempt_set.values_list("outcome", flat=True)) == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert flaky.attempt_set.get(number=1).error_type == "PingFailure"


def test_kill_9_of_a_worker_mid_job_is_rescued_retried_and_succeeds(acme, private_redis, processes):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 6, "steps": 12})
    first = worker(private_redis.url)
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=20, what="the job to start")
    first.kill9()  # the worker and its work horse
    processes.append(worker(private_redis.url))
    wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60, what="the rescued job to succeed")
    attempts = list(job.attempt_set.order_by("number"))
    assert [a.outcome for a in attempts] == [Outcome.ABANDONED, Outcome.SUCCEEDED]
    assert attempts[1].trigger == Trigger.RESCUE
    assert attempts[0].worker_name != attempts[1].worker_name


def test_stop_kills_the_work_horse_and_records_a_stopped_attempt(acme, private_redis, processes):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 30, "steps": 30})
    processes.append(worker(private_redis.url))
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=20, what="the job to start")
    job_stop(job=Job.objects.get(pk=job.pk))
    wait_for(lambda: status_of(job) == Status.CANCELLED, timeout=20, what="the stop to be recorded")
    attempt = job.attempt_set.get()
    assert attempt.outcome == Outcome.STOPPED
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_redis_down_at_enqueue_then_back_relays_and_runs_with_nobody_acting(acme, processes):
    outage = RedisServer().start()
    try:
        processes.append(worker(outage.url))
        processes.append(Process("rqscheduler", redis_url=outage.url, env=FAST_ENGINE_ENV))
        outage.stop()
        from tests.conftest import point_rq_at

        with pytest.MonkeyPatch.context() as mp:
            point_rq_at(outage.url, mp)
            with transaction.atomic():
                job = enqueue("diagnostics.ping", tenant=acme, payload={})
        assert status_of(job) == Status.PENDING
        outage.start()
        wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60, what="the job to be relayed and run")
    finally:
        for process in processes:
            process.terminate()
        processes.clear()
        outage.cleanup()


def test_flushall_with_queued_jobs_still_runs_all_of_them(acme, private_redis, processes):
    jobs = [enqueue("diagnostics.ping", tenant=acme, payload={}) for _ in range(20)]
    private_redis.client().flushall()
    processes.append(worker(private_redis.url))
    wait_for(lambda: Job.objects.filter(status=Status.SUCCEEDED).count() == 20, timeout=60,
             what="all 20 jobs to succeed")
    assert all(j.attempt_set.count() == 1 for j in jobs)


def plant_rq_job(client, job_id: str, data: bytes, queue: str = "default") -> None:
    client.hset(f"rq:job:{job_id}", mapping={"data": data, "origin": queue, "status": "queued",
                                              "created_at": "2026-01-01T00:00:00.000000Z", "description": "x"})
    client.sadd("rq:queues", f"rq:queue:{queue}")
    client.rpush(f"rq:queue:{queue}", job_id)


class Marker:
    """Executing this on unpickling would create the marker file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_pickled_payload_planted_in_redis_is_refused_never_executed(private_redis, processes, tmp_path):
    marker = tmp_path / "pwned"
    client = private_redis.client()
    plant_rq_job(client, "planted-pickle", pickle.dumps((Marker(str(marker)), None, (), {})))
    other_marker = tmp_path / "also-pwned"
    plant_rq_job(client, "planted-json",
                 json.dumps(["pathlib.Path.touch", None, [str(other_marker)], {}]).encode())
    process = worker(private_redis.url, "--burst")
    process.popen.wait(timeout=60)
    output = process.output()
    assert not marker.exists() and not other_marker.exists()
    assert "DeserializationError" in output or "planted-pickle" in output
    assert ("Refused RQ job planted-json from queue default: its function 'pathlib.Path.touch' is not the "
            "engine's entry point" in output)


def test_a_worker_refuses_to_start_with_the_pickle_serializer_named_explicitly(private_redis):
    process = Process("rqworker", "default", "--burst", "--serializer", "rq.serializers.PickleSerializer",
                      redis_url=private_redis.url)
    assert process.popen.wait(timeout=60) != 0
    assert "Tracked workers use JSON only" in process.output()


def test_a_chain_survives_a_worker_killed_mid_step_and_redis_losing_everything(acme, private_redis, processes):
    from jobs.batches import batch_enqueue, chain_enqueue

    chain = chain_enqueue(tenant=acme, name="resilient chain", steps=[
        ("diagnostics.ping", {}), ("diagnostics.ping", {"seconds": 6, "steps": 12}), ("diagnostics.ping", {})])
    batch = batch_enqueue(kind="diagnostics.ping", tenant=acme, name="resilient batch",
                          payloads=[{"seconds": 0.5}] * 6)
    second = chain.members.get(batch_position=2)
    first_worker = worker(private_redis.url)
    processes.append(Process("rqscheduler", redis_url=private_redis.url, env=FAST_ENGINE_ENV))
    wait_for(lambda: status_of(second) == Status.RUNNING, timeout=30, what="the chain's second step to start")
    first_worker.kill9()
    private_redis.client().flushall()
    processes.append(worker(private_redis.url))
    wait_for(lambda: not chain.members.exclude(status=Status.SUCCEEDED).exists(), timeout=90,
             what="every step of the chain to succeed")
    assert [a.outcome for a in second.attempt_set.order_by("number")] == [Outcome.ABANDONED, Outcome.SUCCEEDED]
    # Each is marked finished just after its last member's outcome is committed (by the worker, or by
    # the reconciler's next pass if that worker died in between).
    for group in (batch, chain):
        wait_for(lambda group=group: Batch.objects.get(pk=group.pk).finished_at is not None, timeout=60,
                 what=f"{group.name} to finish")
    assert batch.members.filter(status=Status.SUCCEEDED).count() == 6


def test_a_stop_during_a_reconciler_pass_stops_the_worker_after_the_pass(private_redis, processes):
    # RQ stops an idle worker by raising from its signal handler; inside the reconciler's pass that used
    # to be caught as a failed pass, and the worker ran on until killed. Hold the pass inside a query.
    process = worker(private_redis.url)
    processes.append(process)
    wait_for(lambda: Worker.count(connection=private_redis.client()) == 1, timeout=30, what="the worker")
    with psycopg.connect(database_url()) as blocker:
        blocker.execute("LOCK TABLE jobs_attempt IN ACCESS EXCLUSIVE MODE")
        with psycopg.connect(database_url(), autocommit=True) as watcher:
            def pass_is_waiting() -> bool:
                return watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND datname = current_database()").fetchone()[0] > 0
            wait_for(pass_is_waiting, timeout=30, what="a reconciler pass to wait on the lock")
            os.killpg(process.pid, signal.SIGTERM)
            time.sleep(1)
            assert process.popen.poll() is None  # the pass is still under way: the stop waits for it
        blocker.rollback()
    try:
        process.popen.wait(timeout=20)
    except Exception:
        print(process.output()[-6000:])
        raise
    assert process.popen.returncode == 0
    assert Worker.count(connection=private_redis.client()) == 0
    assert "Reconciler pass failed" not in process.output()


def test_a_stop_held_back_by_a_pass_takes_effect_as_rq_would_have_when_it_ends(private_redis):
    # Passes also run deep in RQ's dequeue loop, which never looks at the stop flag: once the pass ends,
    # an idle worker stops at once (StopRequested), a busy one after its job (the flag).
    worker = TrackedSimpleWorker([transport.get_queue("default")], connection=transport.get_connection())
    worker._shutdown_requested_date = now()  # set by RQ's signal handler before it calls _shutdown
    with pytest.raises(StopRequested):
        with worker._deferring_stop():
            worker._shutdown()  # what RQ's SIGTERM handler calls; held back while the pass runs
            assert not worker._stop_requested
    worker.set_state(WorkerStatus.BUSY)
    with worker._deferring_stop():
        worker._shutdown()
    assert worker._stop_requested
