"""Django's tasks framework on the engine, used only through `django.tasks` calls: the tasks of
tests/jobs/django_tasks.py are enqueued, run by a worker and read back like any Django backend's, and
each is a tracked job underneath (tenant, attempts, admin, schedules)."""
from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import RequestFactory
from django.utils import timezone

from jobs import tenant_context, transport
from jobs.models import Job, Outcome, Source, Status
from jobs.services import job_cancel
from jobs.tasks_backend import TrackedTaskBackend
from jobs.tenancy import TenantContextMiddleware
from tests.jobs import django_tasks
from tests.jobs.helpers import work
from tests.support import FAST_ENGINE_ENV, Process

pytestmark = pytest.mark.django_db(transaction=True)


def job_of(result) -> Job:
    return Job.objects.get(pk=result.id)


def run_until_finished(result, rounds: int = 6):
    """Work the queues, letting retries come due, until the task's result is final."""
    for _ in range(rounds):
        work()
        result.refresh()
        if result.is_finished:
            return result
        Job.objects.filter(pk=result.id, run_at__isnull=False).update(run_at=timezone.now())
        from jobs.reconciler import reconcile
        reconcile()
    return result


def not_allowed(value: int) -> int:  # made a task below: this module is in no installed app
    return value


# --- The backend --------------------------------------------------------------------------------

def test_the_tracked_backend_is_the_default_and_serves_our_queues(settings):
    assert isinstance(task_backends["default"], TrackedTaskBackend) and default_task_backend == task_backends["default"]
    assert default_task_backend.queues == set(settings.RQ_QUEUES)
    assert (default_task_backend.supports_defer, default_task_backend.supports_async_task,
            default_task_backend.supports_get_result, default_task_backend.supports_priority) == (True,) * 4


def test_a_task_is_a_tracked_job_stored_in_the_callers_transaction_and_handed_over_after_commit(acme):
    with transaction.atomic():
        result = django_tasks.noop.enqueue(1, two=3)
        job = job_of(result)
        assert transport.get_queue("default").job_ids == []  # not before commit
    assert (job.kind, job.source, job.payload) == ("tests.jobs.django_tasks.noop", Source.TASK,
                                                   {"args": [1], "kwargs": {"two": 3}})
    assert result.status == TaskResultStatus.READY and result.args == [1] and result.kwargs == {"two": 3}
    assert transport.get_queue("default").job_ids == [result.id]
    assert job.max_attempts == 3 and job.timeout == 300  # the backend's OPTIONS


def test_nothing_is_stored_when_the_callers_transaction_rolls_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        django_tasks.noop.enqueue()
        raise RuntimeError("the view failed")
    assert not Job.objects.exists() and transport.get_queue("default").job_ids == []


def test_it_keeps_the_task_pending_when_redis_is_down(private_redis):
    private_redis.stop()
    result = django_tasks.noop.enqueue()
    assert job_of(result).status == Status.PENDING and result.status == TaskResultStatus.READY


@pytest.mark.parametrize(("args", "kwargs", "named"), [
    ((timezone.now(),), {}, "args[0]"),
    ((), {"when": {1: "a"}}, "kwargs.when"),
    ((), {"ids": {1, 2}}, "kwargs.ids"),
])
def test_arguments_that_do_not_survive_json_are_refused_naming_them_and_nothing_is_stored(args, kwargs, named):
    with pytest.raises(TypeError, match=rf"{named.replace('[', r'\[').replace(']', r'\]')}") as refused:
        django_tasks.noop.enqueue(*args, **kwargs)
    assert "JSON" in str(refused.value)
    assert not Job.objects.exists()


def test_a_task_outside_installed_apps_and_the_setting_is_refused_at_enqueue():
    stray = task()(not_allowed)
    with pytest.raises(InvalidTask, match="TRACKED_TASK_MODULES"):
        stray.enqueue(1)
    assert not Job.objects.exists()


def test_a_worker_never_imports_a_task_module_that_is_not_allowed(acme, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "stray_tasks.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # A job naming it, as if written into the database by someone: the worker refuses the kind unread.
    job = Job.objects.create(kind="stray_tasks.run", tenant=acme, payload={"args": [], "kwargs": {}},
                             queue="default", status=Status.QUEUED, max_attempts=1)
    transport.push([transport.Handover(job_id=str(job.pk), queue="default", kind=job.kind, tenant="acme",
                                       timeout=60, fresh=True)])
    work()
    job.refresh_from_db()
    assert not marker.exists() and "stray_tasks" not in sys.modules
    assert job.status == Status.FAILED and "Unknown job kind" in job.attempt_set.get().error_message


# --- Running and reading back -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["noop", "noop_async"])
def test_sync_and_async_tasks_run_in_a_worker_and_read_back(name):
    chosen = getattr(django_tasks, name)
    result = chosen.enqueue(1, two=3)
    work()
    read = chosen.get_result(result.id)
    assert read.status == TaskResultStatus.SUCCESSFUL and read.is_finished
    assert read.return_value is None and read.args == [1] and read.kwargs == {"two": 3}
    assert read.enqueued_at <= read.started_at <= read.finished_at and read.last_attempted_at == read.started_at
    assert read.attempts == 1 and read.worker_ids == [job_of(result).attempt_set.get().worker_name]
    assert read.task == chosen


def test_return_values_come_back_as_json():
    meaning, total = django_tasks.meaning_of_life.enqueue(), django_tasks.add.enqueue(2, b=40)
    work()
    assert django_tasks.meaning_of_life.get_result(meaning.id).return_value == 42
    assert django_tasks.add.get_result(total.id).return_value == 42


def test_refresh_reads_the_record_again():
    result = django_tasks.meaning_of_life.enqueue()
    with pytest.raises(ValueError, match="not finished"):
        result.return_value
    work()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_the_async_api_enqueues_and_reads_back():
    async def story():
        result = await django_tasks.add.aenqueue(1, 2)
        return result, await django_tasks.add.aget_result(result.id)

    result, read = asyncio.run(story())
    assert read == result and read.status == TaskResultStatus.READY
    work()
    asyncio.run(result.arefresh())
    assert result.return_value == 3


def test_a_failing_task_is_failed_with_its_exception_class_and_traceback():
    result = django_tasks.fails.enqueue()
    work()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: This task failed on purpose\n")


def test_a_task_that_returns_what_json_cannot_hold_fails_with_a_type_error():
    result = django_tasks.complex_return.enqueue()
    run_until_finished(result)
    assert result.status == TaskResultStatus.FAILED and result.errors[0].exception_class is TypeError


def test_a_failed_attempt_is_retried_with_the_tasks_own_options_and_its_error_kept():
    result = django_tasks.fails_once.enqueue("m1")
    assert job_of(result).max_attempts == 2
    work()
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.errors[0].exception_class is RuntimeError
    run_until_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "m1"
    assert result.attempts == 2 and len(result.errors) == 1


def test_the_engines_exceptions_work_inside_tasks():
    result = django_tasks.gives_up.enqueue()
    work()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1  # GiveUp: no retry of 3
    assert result.errors[0].exception_class.__name__ == "GiveUp"


def test_takes_context_gives_the_job_id_and_the_attempt_number():
    result = django_tasks.attempt_and_id.enqueue(fail_until=1)
    run_until_finished(result)
    assert result.return_value == {"id": result.id, "attempt": 2}


def test_a_task_drives_the_progress_bar():
    result = django_tasks.reports_progress.enqueue(4)
    work()
    job = job_of(result)
    assert (job.status, job.progress, job.progress_message) == (Status.SUCCEEDED, 100, "step 4 of 4")


def test_a_cancelled_task_reads_as_failed_saying_so():
    result = django_tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    job_cancel(job=job_of(result))
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class.__name__ == "Cancelled"


def test_get_result_refuses_unknown_ids_other_kinds_and_other_tasks(acme):
    from jobs import enqueue

    for unknown in ("123", "not a uuid", "01a2f7e0-0000-7000-8000-000000000000"):
        with pytest.raises(TaskResultDoesNotExist):
            django_tasks.noop.get_result(unknown)
    kind_job = enqueue("diagnostics.ping", tenant=acme, payload={})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(kind_job.pk))
    result = django_tasks.noop_async.enqueue()
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        django_tasks.noop.get_result(result.id)


# --- Defer and priority -------------------------------------------------------------------------

def test_run_after_keeps_the_job_scheduled_until_its_time():
    later = timezone.now() + timedelta(minutes=5)
    result = django_tasks.noop.using(run_after=later).enqueue()
    job = job_of(result)
    assert job.status == Status.SCHEDULED and job.run_at == later and result.status == TaskResultStatus.READY
    past = django_tasks.noop.using(run_after=timezone.now() - timedelta(minutes=5)).enqueue()
    assert job_of(past).status == Status.QUEUED


@pytest.mark.parametrize(("task_queue", "priority", "queue", "within"), [
    ("default", 0, "default", 5), ("default", 100, "critical", 10), ("default", 50, "critical", 8),
    ("default", 10, "high", 6), ("default", -1, "low", 5), ("high", 100, "high", 10), ("low", -100, "low", 1),
])
def test_priority_on_the_default_queue_picks_one_of_ours_and_orders_within_it(task_queue, priority, queue, within):
    result = django_tasks.noop.using(queue_name=task_queue, priority=priority).enqueue()
    assert (job_of(result).queue, job_of(result).priority) == (queue, within)


def test_a_queue_that_is_not_ours_is_refused():
    with pytest.raises(InvalidTask, match="Queue 'emails' is not valid"):
        django_tasks.noop.using(queue_name="emails")


# --- Tenancy ------------------------------------------------------------------------------------

def test_a_task_is_its_tenants_inside_tenant_context_and_the_systems_outside(acme, alice):
    with tenant_context(acme, user=alice):
        mine = django_tasks.noop.enqueue()
    system = django_tasks.noop.enqueue()
    assert (job_of(mine).tenant, job_of(mine).enqueued_by) == (acme, alice)
    assert (job_of(system).tenant, job_of(system).enqueued_by) == (None, None)


def test_the_middleware_makes_a_requests_tasks_its_users_tenants(acme, alice, root):
    made = []
    middleware = TenantContextMiddleware(lambda request: made.append(django_tasks.noop.enqueue()) or "ok")
    for user in (alice, root):  # alice belongs to acme alone; a superuser's work is the system's
        request = RequestFactory().get("/")
        request.user = user
        middleware(request)
    assert [(job_of(r).tenant, job_of(r).enqueued_by) for r in made] == [(acme, alice), (None, root)]


def test_tenant_staff_see_their_tasks_in_the_admin_and_the_kind_filter_lists_tasks(client, acme, alice):
    with tenant_context(acme, user=alice):
        result = django_tasks.noop.enqueue()
    theirs = django_tasks.noop.enqueue()  # a system job: superusers only
    client.force_login(alice)
    listing = client.get("/admin/jobs/job/").content.decode()
    assert result.id[-8:] in listing and theirs.id[-8:] not in listing
    assert "tests.jobs.django_tasks.noop" in client.get("/admin/jobs/job/?kind=tests.jobs.django_tasks.noop").content.decode()


def test_a_schedule_fires_a_public_task(acme):
    from jobs.schedules.models import Schedule
    from jobs.schedules.services import schedule_run_now, schedule_save
    from jobs.registry import public_kind_names

    path = "tests.jobs.django_tasks.public_cleanup"
    assert path in public_kind_names() and "tests.jobs.django_tasks.noop" not in public_kind_names()
    schedule = schedule_save(schedule=Schedule(tenant=acme, name="cleanup", kind=path, cron="0 3 * * *",
                                               payload={"args": [], "kwargs": {"days": 3}}))
    run = schedule_run_now(schedule=schedule)
    work()
    read = django_tasks.public_cleanup.get_result(str(run.job_id))
    assert read.return_value == 3 and job_of(read).queue == "low" and job_of(read).tenant == acme


def test_a_tasks_own_tenant_limit_holds_its_jobs_as_a_kinds_would(acme):
    from jobs import relay

    with tenant_context(acme):
        results = [django_tasks.one_at_a_time.enqueue(n) for n in range(3)]
    jobs = [job_of(result) for result in results]
    assert [job.status for job in jobs] == [Status.QUEUED, Status.PENDING, Status.PENDING]
    assert {job.progress_message for job in jobs[1:]} == {relay.HELD_KIND_LIMIT}
    run_until_finished(results[2])  # each handed over as the one before it frees the slot
    for result in results:
        result.refresh()
    assert [result.return_value for result in results] == [0, 1, 2]


def test_a_batch_of_a_task_runs_like_a_batch_of_a_kind(acme):
    from jobs.batches import batch_enqueue

    batch = batch_enqueue(kind="tests.jobs.django_tasks.add", tenant=acme, name="sums",
                          payloads=[{"args": [n, n]} for n in range(4)])
    work()
    results = [django_tasks.add.get_result(str(job.pk)) for job in batch.members.order_by("batch_position")]
    assert [result.return_value for result in results] == [0, 2, 4, 6]


# --- Django's signals ---------------------------------------------------------------------------

def test_djangos_signals_are_sent_when_enqueued_started_and_finished():
    seen = []

    def record(signal):
        return lambda sender, task_result, **kwargs: seen.append((signal, task_result.id, task_result.status))

    receivers = {name: record(name) for name in ("enqueued", "started", "finished")}
    task_enqueued.connect(receivers["enqueued"])
    task_started.connect(receivers["started"])
    task_finished.connect(receivers["finished"])
    try:
        result = django_tasks.meaning_of_life.enqueue()
        work()
    finally:
        task_enqueued.disconnect(receivers["enqueued"])
        task_started.disconnect(receivers["started"])
        task_finished.disconnect(receivers["finished"])
    assert seen == [("enqueued", result.id, TaskResultStatus.READY), ("started", result.id, TaskResultStatus.RUNNING),
                    ("finished", result.id, TaskResultStatus.SUCCESSFUL)]


# --- With a real worker process -----------------------------------------------------------------

@pytest.mark.slow
def test_a_real_rqworker_runs_tasks_enqueued_through_djangos_api(private_redis, processes, acme):
    with tenant_context(acme):
        results = [django_tasks.add.enqueue(20, 22), django_tasks.noop_async.enqueue(),
                   django_tasks.fails.enqueue(), django_tasks.attempt_and_id.enqueue()]
    worker = Process("rqworker", "critical", "high", "default", "low", "--burst", redis_url=private_redis.url,
                     env={**FAST_ENGINE_ENV, "TRACKED_TASK_MODULES": "tests.jobs.django_tasks"})
    assert worker.popen.wait(timeout=90) == 0, worker.output()
    for result in results:
        result.refresh()
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL, TaskResultStatus.SUCCESSFUL,
                                           TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL]
    assert results[0].return_value == 42 and results[3].return_value == {"id": results[3].id, "attempt": 1}
    assert results[2].errors[0].exception_class is ValueError
    assert all(job_of(r).tenant == acme for r in results)
    assert Job.objects.filter(attempt_set__outcome=Outcome.SUCCEEDED).count() == 3
