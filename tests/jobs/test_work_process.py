"""The default worker's work process, with real `rqworker` processes: one long-lived child runs the
handlers (no fork per job), yet a crash, a stop or a timeout ends only that child, and a leak or too
many jobs replace it between jobs."""
from __future__ import annotations

import time

import pytest
from django.tasks import TaskResultStatus

from jobs.models import Job, Outcome, Status
from jobs.services import job_stop
from tests.jobs import django_tasks
from tests.support import FAST_ENGINE_ENV, Process, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUES = ("critical", "high", "default", "low")


def worker(redis_url: str, *extra: str, **env: str) -> Process:
    return Process("rqworker", *QUEUES, *extra, redis_url=redis_url,
                   env={**FAST_ENGINE_ENV, "TRACKED_TASK_MODULES": "tests.jobs.django_tasks", **env})


def burst(redis_url: str, **env: str) -> Process:
    process = worker(redis_url, "--burst", **env)
    assert process.popen.wait(timeout=90) == 0, process.output()
    return process


def finished(results) -> list:
    for result in results:
        result.refresh()
    return results


def test_one_work_process_runs_job_after_job_and_it_is_not_the_worker(private_redis):
    results = [django_tasks.which_process.enqueue() for _ in range(5)]
    process = burst(private_redis.url)
    pids = {result.return_value for result in finished(results)}
    assert len(pids) == 1 and process.pid not in pids


def test_a_job_that_kills_its_process_fails_alone_and_the_worker_goes_on(private_redis):
    before, crash, after = (django_tasks.which_process.enqueue(), django_tasks.crash.enqueue(),
                            django_tasks.which_process.enqueue())
    burst(private_redis.url)
    before, crash, after = finished([before, crash, after])
    assert (before.status, crash.status, after.status) == (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED,
                                                           TaskResultStatus.SUCCESSFUL)
    attempt = Job.objects.get(pk=crash.id).attempt_set.get()
    assert (attempt.outcome, attempt.error_class) == (Outcome.ABANDONED, "jobs.exceptions.WorkHorseDied")
    assert "exit status 3" in attempt.error_message
    assert after.return_value != before.return_value  # a new work process took over


def test_the_work_process_is_replaced_after_its_quota_of_jobs(private_redis):
    results = [django_tasks.which_process.enqueue() for _ in range(5)]
    burst(private_redis.url, JOBS_WORK_PROCESS_MAX_JOBS="2")
    pids = [result.return_value for result in finished(results)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_a_leaking_work_process_is_replaced_between_jobs(private_redis):
    leak, next_job = django_tasks.hold_memory.enqueue(mb=300), django_tasks.which_process.enqueue()
    burst(private_redis.url, JOBS_WORK_PROCESS_RECYCLE_MB="250")
    leak, next_job = finished([leak, next_job])
    assert leak.status == TaskResultStatus.SUCCESSFUL and next_job.return_value != leak.return_value


def test_a_job_over_the_memory_bound_fails_with_memory_error_and_the_next_runs(private_redis):
    greedy, modest = django_tasks.allocate.enqueue(mb=3000), django_tasks.allocate.enqueue(mb=10)
    burst(private_redis.url, JOBS_WORK_PROCESS_MAX_MEMORY_MB="2048")
    greedy, modest = finished([greedy, modest])
    assert greedy.status == TaskResultStatus.FAILED and greedy.errors[0].exception_class is MemoryError
    assert modest.return_value == 10 * 1024 * 1024


def test_a_stop_ends_the_job_within_a_second_and_the_worker_takes_the_next(private_redis, processes):
    long, next_job = django_tasks.sleep.using(queue_name="high").enqueue(seconds=1.5), None
    processes.append(worker(private_redis.url))
    wait_for(lambda: Job.objects.filter(pk=long.id, status=Status.RUNNING).exists(), timeout=30,
             what="the job to start")
    asked = time.monotonic()
    job_stop(job=Job.objects.get(pk=long.id))
    wait_for(lambda: Job.objects.filter(pk=long.id, status=Status.CANCELLED).exists(), timeout=10,
             what="the job to be stopped")
    assert time.monotonic() - asked < 1.5  # before the job could have finished by itself
    assert Job.objects.get(pk=long.id).attempt_set.get().outcome == Outcome.STOPPED
    next_job = django_tasks.which_process.enqueue()
    wait_for(lambda: finished([next_job])[0].is_finished, timeout=30, what="the next job")
    assert next_job.status == TaskResultStatus.SUCCESSFUL


def test_a_job_past_its_timeout_is_ended_and_the_worker_goes_on(private_redis):
    slow, next_job = django_tasks.sleep.enqueue(seconds=30), django_tasks.which_process.enqueue()
    started = time.monotonic()
    burst(private_redis.url)
    assert time.monotonic() - started < 20
    slow, next_job = finished([slow, next_job])
    assert slow.status == TaskResultStatus.FAILED and next_job.status == TaskResultStatus.SUCCESSFUL
    assert Job.objects.get(pk=slow.id).attempt_set.get().outcome == Outcome.TIMED_OUT
