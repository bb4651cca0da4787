"""Firing from the database: one job per fire time, misfire policies, pause, dates, clock jumps, and
the schedules' entries in rq-scheduler (registered with stable ids, removed on delete, restored by sync)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, transaction

from jobs import enqueue, transport
from jobs.models import Job, Source, Status
from jobs.schedules.models import MisfirePolicy, RunOutcome, Schedule, ScheduleRun
from jobs.schedules.services import (
    schedule_delete, schedule_fire_due, schedule_save, schedules_set_enabled, schedules_sync,
)
from jobs.scheduler_process import TICK_OFFSET, TrackedScheduler, until_next_tick
from tests.jobs import kinds  # noqa: F401  (registers tests.echo)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, 7, 59, tzinfo=UTC)


def make(tenant, *, cron="0 * * * *", policy=MisfirePolicy.ONCE, tz="UTC", **fields) -> Schedule:
    schedule = Schedule(tenant=tenant, name=fields.pop("name", f"every hour {cron}"), kind="tests.echo",
                        payload={"text": "scheduled"}, cron=cron, timezone=tz, misfire_policy=policy, **fields)
    return schedule_save(schedule=schedule)


def fire(schedule: Schedule, at: datetime) -> list[ScheduleRun]:
    with time_machine.travel(at, tick=False):
        runs = schedule_fire_due(schedule_id=schedule.pk)
    schedule.refresh_from_db()
    return runs


def jobs_of(schedule: Schedule) -> list[Job]:
    return list(Job.objects.filter(pk__in=schedule.runs.values("job_id")).order_by("created_at"))


def entry_time(schedule: Schedule) -> datetime | None:
    score = transport.schedule_entries().get(schedule.pk)
    return datetime.fromtimestamp(score, UTC) if score is not None else None


@pytest.fixture
def at_t0():
    with time_machine.travel(T0, tick=False):
        yield


def test_it_fires_on_time_one_job_with_source_schedule_and_a_link_to_it(acme, at_t0):
    schedule = make(acme)
    assert schedule.next_fire_at == datetime(2026, 12, 1, 8, tzinfo=UTC)
    [run] = fire(schedule, datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC))
    job = run.job
    assert (run.outcome, run.fire_at, run.missed) == (RunOutcome.FIRED, datetime(2026, 12, 1, 8, tzinfo=UTC), 0)
    assert (job.kind, job.tenant, job.source, job.payload["text"]) == ("tests.echo", acme, Source.SCHEDULE, "scheduled")
    assert schedule.next_fire_at == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_it_makes_one_job_per_fire_time_however_often_it_is_asked(acme, at_t0):
    schedule = make(acme)
    for second in (1, 2, 30):
        fire(schedule, datetime(2026, 12, 1, 8, 0, second, tzinfo=UTC))
    assert len(jobs_of(schedule)) == 1
    # Even a process that skipped the row lock (or a copy of the bookkeeping from before) cannot add a
    # second run for the same fire time: the database refuses it.
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduleRun.objects.create(schedule=schedule, fire_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
                                   outcome=RunOutcome.FIRED)


def test_it_makes_no_second_job_when_the_clock_jumps_back(acme, at_t0):
    schedule = make(acme)
    fire(schedule, datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC))
    fire(schedule, datetime(2026, 12, 1, 7, 58, tzinfo=UTC))  # the host's clock stepped back two minutes
    fire(schedule, datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC))
    assert len(jobs_of(schedule)) == 1 and schedule.next_fire_at == datetime(2026, 12, 1, 9, tzinfo=UTC)


# --- a scheduler down for three fire times (08:00, 09:00, 10:00), back at 10:30 -------------------------

BACK = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
MISSED = [datetime(2026, 12, 1, hour, tzinfo=UTC) for hour in (8, 9, 10)]


def test_skip_policy_runs_nothing_missed_and_records_the_skip(acme, at_t0):
    schedule = make(acme, policy=MisfirePolicy.SKIP)
    [run] = fire(schedule, BACK)
    assert (run.outcome, run.fire_at, run.job, run.missed) == (RunOutcome.SKIPPED, MISSED[-1], None, 2)
    assert "3 runs missed" in run.note
    assert jobs_of(schedule) == [] and schedule.next_fire_at == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_skip_policy_still_runs_a_fire_time_reached_within_the_grace(acme, at_t0, settings):
    settings.SCHEDULES_MISFIRE_GRACE_SECONDS = 60
    schedule = make(acme, policy=MisfirePolicy.SKIP)
    [run] = fire(schedule, datetime(2026, 12, 1, 10, 0, 40, tzinfo=UTC))
    assert (run.outcome, run.fire_at, run.missed) == (RunOutcome.FIRED, MISSED[-1], 2)
    assert "2 runs missed before this one" in run.note and len(jobs_of(schedule)) == 1


def test_once_policy_runs_one_catch_up_for_all_missed(acme, at_t0):
    schedule = make(acme, policy=MisfirePolicy.ONCE)
    [run] = fire(schedule, BACK)
    assert (run.outcome, run.fire_at, run.missed) == (RunOutcome.CAUGHT_UP, MISSED[-1], 2)
    assert len(jobs_of(schedule)) == 1


def test_all_policy_runs_every_missed_fire_time(acme, at_t0):
    schedule = make(acme, policy=MisfirePolicy.ALL)
    runs = fire(schedule, BACK)
    assert [run.fire_at for run in runs] == MISSED
    assert {run.outcome for run in runs} == {RunOutcome.CAUGHT_UP} and len(jobs_of(schedule)) == 3
    assert fire(schedule, BACK + timedelta(seconds=5)) == []  # settled: asking again adds nothing


def test_all_policy_is_bounded_and_says_what_it_left_out(acme, at_t0, settings):
    settings.SCHEDULES_CATCHUP_LIMIT = 2
    schedule = make(acme, policy=MisfirePolicy.ALL)
    runs = fire(schedule, BACK)
    assert [run.fire_at for run in runs] == MISSED[1:]  # the latest ones
    assert runs[0].missed == 1 and "at most 2 missed runs are caught up" in runs[0].note


def test_a_paused_schedule_fires_nothing_and_does_not_catch_up_when_resumed(acme, at_t0):
    schedule = make(acme, policy=MisfirePolicy.ALL)
    schedules_set_enabled(schedules=[schedule], enabled=False)
    assert fire(schedule, BACK) == [] and schedule.next_fire_at is None
    with time_machine.travel(BACK, tick=False):
        schedules_set_enabled(schedules=[schedule], enabled=True)
    schedule.refresh_from_db()
    assert schedule.next_fire_at == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert fire(schedule, BACK + timedelta(minutes=1)) == [] and jobs_of(schedule) == []


def test_it_fires_only_between_the_start_and_end_dates(acme, at_t0):
    schedule = make(acme, policy=MisfirePolicy.ALL, start_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                    end_at=datetime(2026, 12, 1, 11, 30, tzinfo=UTC))
    assert schedule.next_fire_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    runs = fire(schedule, datetime(2026, 12, 1, 13, tzinfo=UTC))
    assert [run.fire_at.hour for run in runs] == [10, 11]
    assert schedule.next_fire_at is None and entry_time(schedule) is None  # ended: nothing left to wake for


def test_a_payload_the_kind_no_longer_accepts_is_recorded_and_the_schedule_goes_on(acme, at_t0):
    schedule = make(acme)
    Schedule.objects.filter(pk=schedule.pk).update(payload={"text": 42})
    [run] = fire(schedule, datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC))
    assert run.outcome == RunOutcome.ERROR and run.job is None and "payload.text" in run.note
    assert schedule.next_fire_at == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_a_daily_0230_in_berlin_fires_once_on_each_dst_day(acme):
    for start, days in ((datetime(2027, 3, 27, 3, tzinfo=UTC), 3), (datetime(2027, 10, 30, 3, tzinfo=UTC), 3)):
        with time_machine.travel(start, tick=False):
            schedule = make(acme, cron="30 2 * * *", tz="Europe/Berlin", name=f"berlin {start:%m}")
        # The scheduler wakes at each registered time, then every ten minutes through the small hours.
        for _ in range(days):
            moment = schedule.next_fire_at
            for minutes in range(0, 180, 10):
                fire(schedule, moment + timedelta(minutes=minutes))
        local = [run.fire_at.astimezone(ZoneInfo("Europe/Berlin")) for run in schedule.runs.order_by("fire_at")]
        assert [t.day for t in local] == [(start + timedelta(days=n)).day for n in range(1, days + 1)]
        assert len(jobs_of(schedule)) == len(local) == days


# --- rq-scheduler entries ------------------------------------------------------------------------------


def test_it_registers_one_entry_per_schedule_with_a_stable_id(acme, at_t0, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        schedule = make(acme)
    assert entry_time(schedule) == schedule.next_fire_at
    with django_capture_on_commit_callbacks(execute=True):
        schedule.cron = "15 * * * *"
        schedule_save(schedule=schedule, changed=["cron"])
    schedules_sync()
    schedules_sync()  # what a scheduler restart does
    assert transport.schedule_entries().keys() == {schedule.pk}
    assert entry_time(schedule) == datetime(2026, 12, 1, 8, 15, tzinfo=UTC)


def test_pausing_removes_the_entry_and_resuming_puts_it_back(acme, at_t0, django_capture_on_commit_callbacks):
    schedule = make(acme)
    schedules_sync()
    with django_capture_on_commit_callbacks(execute=True):
        schedules_set_enabled(schedules=[schedule], enabled=False)
    assert entry_time(schedule) is None
    with django_capture_on_commit_callbacks(execute=True):
        schedules_set_enabled(schedules=[schedule], enabled=True)
    assert entry_time(schedule) == datetime(2026, 12, 1, 8, tzinfo=UTC)


def test_deleting_a_schedule_removes_it_from_rq_scheduler(acme, at_t0, private_redis,
                                                           django_capture_on_commit_callbacks):
    schedule = make(acme)
    schedules_sync()
    scheduler = transport.get_scheduler()
    assert transport.schedule_entry_id(schedule.pk) in scheduler
    with django_capture_on_commit_callbacks(execute=True):
        schedule_delete(schedule=schedule)
    assert transport.schedule_entry_id(schedule.pk) not in scheduler
    assert not private_redis.client().exists(f"rq:job:{transport.schedule_entry_id(schedule.pk)}")
    assert transport.schedule_entries() == {}


def test_sync_restores_what_redis_lost_and_drops_entries_of_schedules_that_are_gone(acme, at_t0, private_redis):
    schedule = make(acme)
    schedules_sync()
    private_redis.client().flushall()
    transport.schedule_entries_set({987654: datetime(2026, 12, 1, 9, tzinfo=UTC)})  # no such schedule
    assert schedules_sync() == {"set": 1, "removed": 1}
    assert transport.schedule_entries().keys() == {schedule.pk}


def test_the_scheduler_fires_a_due_entry_from_the_database_and_never_queues_the_entry(
        acme, at_t0, django_capture_on_commit_callbacks):
    schedule = make(acme)
    schedules_sync()
    scheduler: TrackedScheduler = transport.get_scheduler()
    with time_machine.travel(datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        scheduler.enqueue_jobs()
    [job] = jobs_of(schedule)
    assert job.status == Status.QUEUED and transport.get_queue(job.queue).job_ids == [str(job.pk)]
    assert entry_time(schedule) == datetime(2026, 12, 1, 9, tzinfo=UTC)  # woken again at the next fire time


def test_a_scheduler_that_dies_holding_rq_schedulers_lock_holds_the_others_up_for_seconds_not_a_minute(
        private_redis, settings):
    settings.JOBS_TICK_SECONDS = 1
    dying: TrackedScheduler = transport.get_scheduler()  # built with rq-scheduler's 60 s interval
    assert dying.acquire_lock()  # ... and never removes it
    assert 0 < private_redis.client().ttl(dying.scheduler_lock_key) <= 11
    assert not transport.get_scheduler().acquire_lock()  # the lock still means something while it lives


def test_ticks_fall_on_whole_seconds_so_every_calendar_second_gets_one(settings):
    settings.JOBS_TICK_SECONDS = 1
    assert until_next_tick(100.3) == pytest.approx(0.7 + TICK_OFFSET)
    assert until_next_tick(100.999) == pytest.approx(0.001 + TICK_OFFSET)
    settings.JOBS_TICK_SECONDS = 0.5
    assert until_next_tick(100.3) == pytest.approx(0.2 + TICK_OFFSET)


def test_a_scheduler_that_is_not_the_reconcilers_leader_still_relays_on_that_tick(acme, private_redis):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "later"}, delay=60)
    Job.objects.filter(pk=job.pk).update(run_at=datetime.now(UTC) - timedelta(seconds=1))  # due now
    assert transport.acquire_lock("jobs:reconcile:lock", ttl=30)  # another scheduler leads the passes
    transport.get_scheduler().run(burst=True)  # one tick, a reconcile tick
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED
