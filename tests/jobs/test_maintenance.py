"""Retention cleanup: per-tenant retention, pinned jobs kept, short batches, once a day by itself."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import enqueue, stats
from jobs.maintenance import CLEANUP_KIND, retention_cleanup
from jobs.schedules.services import system_schedules_ensure
from jobs.schedules.services import schedule_fire_due
from jobs.models import Attempt, Job, Status
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from tests.jobs import kinds  # noqa: F401  (registers tests.echo)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db


def finished(tenant, status: str, days_ago: float, *, pinned: bool = False) -> Job:
    job = enqueue("tests.echo", tenant=tenant, payload={"text": "x"})
    when = timezone.now() - timedelta(days=days_ago)
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=when, updated_at=when, pinned=pinned)
    Attempt.objects.create(job=job, number=1)
    return job


def surviving(*jobs: Job) -> set:
    return set(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("pk", flat=True))


def test_it_deletes_what_each_tenants_retention_allows_and_keeps_pinned_and_unfinished_jobs(acme, globex):
    globex.retention_succeeded_days = 1
    globex.save()
    old_ok, new_ok = finished(acme, Status.SUCCEEDED, 8), finished(acme, Status.SUCCEEDED, 6)
    old_failed, recent_failed = finished(acme, Status.FAILED, 31), finished(acme, Status.CANCELLED, 20)
    pinned = finished(acme, Status.SUCCEEDED, 100, pinned=True)
    theirs = finished(globex, Status.SUCCEEDED, 2)
    system = finished(None, Status.SUCCEEDED, 9)
    stuck = finished(acme, Status.SUCCEEDED, 50)
    Job.objects.filter(pk=stuck.pk).update(status=Status.RUNNING)  # unfinished, however old: never deleted

    report = retention_cleanup()

    assert report["jobs"] == {"acme": 2, "globex": 1, "system": 1}
    assert surviving(old_ok, new_ok, old_failed, recent_failed, pinned, theirs, system, stuck) == {
        new_ok.pk, recent_failed.pk, pinned.pk, stuck.pk}
    assert not Attempt.objects.filter(job_id__in=[old_ok.pk, old_failed.pk, theirs.pk, system.pk]).exists()


def test_it_deletes_in_short_batches(acme, settings):
    settings.JOBS_CLEANUP_BATCH = 2
    for _ in range(5):
        finished(acme, Status.SUCCEEDED, 10)
    with CaptureQueriesContext(connection) as queries:
        report = retention_cleanup()
    assert report["jobs"] == {"acme": 5} and not Job.objects.exists()
    job_deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "jobs_job"')]
    assert len(job_deletes) == 3  # 2 + 2 + 1


def test_it_deletes_expired_delivery_records(acme, settings):
    endpoint = WebhookEndpoint.objects.create(tenant=acme, url="https://example.com/hook")
    message = WebhookMessage.objects.create(tenant=acme, endpoint=endpoint, event_type="x", body="{}")
    old = WebhookDelivery.objects.create(message=message, attempt=1, url=endpoint.url)
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = WebhookDelivery.objects.create(message=message, attempt=2, url=endpoint.url)
    assert retention_cleanup()["webhook_deliveries"] == {"acme": 1}
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.django_db(transaction=True)
def test_the_daily_cleanup_is_a_built_in_system_schedule_that_runs_once_a_day(settings):
    settings.JOBS_CLEANUP_HOUR = 3
    with time_machine.travel(datetime(2026, 11, 22, 2, 0, tzinfo=UTC), tick=False):
        made = system_schedules_ensure()  # alerts are off here: the cleanup and the dashboard's summary
        assert sorted(s.kind for s in made) == [CLEANUP_KIND, stats.SUMMARIZE_KIND]
        [schedule] = [s for s in made if s.kind == CLEANUP_KIND]
        assert system_schedules_ensure() == made  # made once, whoever asks again
        assert (schedule.tenant, schedule.kind, schedule.cron) == (None, CLEANUP_KIND, "0 3 * * *")
        assert schedule_fire_due(schedule_id=schedule.pk) == []
    with time_machine.travel(datetime(2026, 11, 22, 3, 0, 2, tzinfo=UTC), tick=False):
        [run] = schedule_fire_due(schedule_id=schedule.pk)
        assert run.job.kind == CLEANUP_KIND and run.job.tenant is None
        work()
        run.job.refresh_from_db()
        assert run.job.status == Status.SUCCEEDED and "jobs" in run.job.result
        assert schedule_fire_due(schedule_id=schedule.pk) == []  # already done today
    with time_machine.travel(datetime(2026, 11, 23, 3, 0, 1, tzinfo=UTC), tick=False):
        assert len(schedule_fire_due(schedule_id=schedule.pk)) == 1
    assert Job.objects.filter(kind=CLEANUP_KIND).count() == 2


def test_it_lets_a_tenant_admin_pin_a_job_that_cleaning_then_keeps(client, acme, alice):
    from jobs.models import AuditEvent
    from jobs.staff import staff_jobs_act

    job = finished(acme, Status.SUCCEEDED, 40)
    client.force_login(alice)
    client.post("/admin/jobs/job/", {"action": "pin_jobs", "_selected_action": [str(job.pk)]})
    job.refresh_from_db()
    assert job.pinned and AuditEvent.objects.filter(action="pin", actor=alice).exists()
    staff_jobs_act(action="clean", user=alice, jobs=Job.objects.filter(pk=job.pk), days=0)
    assert Job.objects.filter(pk=job.pk).exists()
    assert retention_cleanup()["jobs"] == {}
