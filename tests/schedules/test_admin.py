"""The schedules admin: tenant admins manage their tenant's schedules with errors that name the problem,
see the timing in words, the next fire times in the schedule's zone and the last runs; run now, pause
and resume are audited; viewers read; other tenants and system schedules stay out of sight."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from jobs import transport
from jobs.models import AuditAction, AuditEvent, Job, Source
from jobs.schedules.models import RunOutcome, Schedule, ScheduleRun
from jobs.schedules.services import schedule_fire_due, schedule_save
from tests.jobs import kinds  # noqa: F401  (registers tests.echo)

pytestmark = pytest.mark.django_db

ADD = "/admin/schedules/schedule/add/"
LIST = "/admin/schedules/schedule/"


def form(for_tenant, **overrides) -> dict:
    data = {"tenant": for_tenant.pk if for_tenant else "", "name": "nightly ping", "kind": "diagnostics.ping", "payload": '{"steps": 2}',
            "cron": "30 2 * * 1", "timezone": "Europe/Berlin", "misfire_policy": "once", "enabled": "on",
            "start_at_0": "", "start_at_1": "", "end_at_0": "", "end_at_1": ""}
    return {**data, **overrides}


def make(tenant, name="weekly", **fields) -> Schedule:
    return schedule_save(schedule=Schedule(tenant=tenant, name=name, kind="diagnostics.ping", payload={},
                                           cron="30 2 * * 1", timezone="Europe/Berlin", **fields))


def errors(response) -> dict[str, list[str]]:
    return {name: list(messages) for name, messages in response.context["adminform"].form.errors.items()}


def test_a_tenant_admin_adds_a_schedule_registered_in_rq_scheduler_and_audited(client, acme, alice,
                                                                                django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD, form(acme))
    assert response.status_code == 302, errors(response)
    schedule = Schedule.objects.get(name="nightly ping")
    assert (schedule.tenant, schedule.payload["steps"], schedule.created_by) == (acme, 2, alice)
    assert schedule.next_fire_at.astimezone(schedule.tz).strftime("%a %H:%M") == "Mon 02:30"
    assert transport.schedule_entries() == {schedule.pk: schedule.next_fire_at.timestamp()}
    assert AuditEvent.objects.filter(action=AuditAction.SCHEDULE_ADD, actor=alice, tenant=acme).exists()


@pytest.mark.parametrize("field, value, words", [
    ("cron", "61 2 * * *", "The minute field '61' is not valid"),
    ("cron", "30 2 * *", "Has 4 fields"),
    ("timezone", "Europe/Atlantis", "'Europe/Atlantis' is not a known IANA time zone"),
    ("payload", '{"steps": "two"}', "payload.steps:"),
    ("payload", '{"colour": "red"}', "payload.colour: Unknown field."),
    ("payload", '{"steps": ', "Enter a valid JSON."),
    ("kind", "maintenance.cleanup", "Select a valid choice"),  # not a kind tenant staff may start
    ("tenant", "", "Choose a tenant: system-wide schedules are for superusers."),
    ("end_at_0", "2026-01-01", "Must be after the start date."),
])
def test_bad_input_is_a_form_error_naming_the_problem_and_keeps_what_was_typed(client, acme, alice, field, value,
                                                                               words):
    client.force_login(alice)
    data = form(acme, **{field: value})
    if field == "end_at_0":
        data.update(start_at_0="2026-06-01", start_at_1="00:00", end_at_1="00:00")
    response = client.post(ADD, data)
    assert response.status_code == 200 and not Schedule.objects.exists()
    found = errors(response)
    target = field.removesuffix("_0")
    assert any(words in message for message in found[target]), found
    assert response.context["adminform"].form.data["name"] == "nightly ping"


def test_the_change_page_says_the_timing_in_words_next_times_in_its_zone_and_the_last_runs(client, acme, alice):
    with time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False):
        schedule = make(acme)
    with time_machine.travel(datetime(2026, 12, 7, 1, 30, 5, tzinfo=UTC), tick=False):
        schedule_fire_due(schedule_id=schedule.pk)
    client.force_login(alice)
    page = client.get(f"{LIST}{schedule.pk}/change/").content.decode()
    assert "At 02:30, only on Monday" in page
    for day in ("2026-12-14 02:30 CET", "2026-12-21 02:30 CET", "2027-01-11 02:30 CET"):
        assert day in page  # the next five, on Berlin's clock
    job = Job.objects.get(source=Source.SCHEDULE)
    assert "2026-12-07 02:30 CET" in page and job.short_id in page and "Fired on time" in page
    listing = client.get(LIST).content.decode()
    assert "2026-12-14 02:30 CET" in listing and "Active" in listing
    job_page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"/admin/schedules/schedule/{schedule.pk}/change/" in job_page  # the job links back to its schedule


def test_run_now_pause_and_resume_from_the_change_page_are_audited(client, acme, alice,
                                                                   django_capture_on_commit_callbacks):
    schedule = make(acme)
    client.force_login(alice)
    base = f"{LIST}{schedule.pk}/act/"
    assert 'data-schedule-action="run_now"' in client.get(f"{LIST}{schedule.pk}/change/").content.decode()
    client.post(base + "run_now/")
    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.outcome == RunOutcome.MANUAL and run.triggered_by == alice and run.job.enqueued_by == alice
    with django_capture_on_commit_callbacks(execute=True):
        client.post(base + "pause/")
    schedule.refresh_from_db()
    assert not schedule.enabled and transport.schedule_entries() == {}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(base + "resume/")
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.pk in transport.schedule_entries()
    actions = list(AuditEvent.objects.filter(actor=alice).order_by("created_at").values_list("action", flat=True))
    assert actions == [AuditAction.SCHEDULE_RUN_NOW, AuditAction.SCHEDULE_PAUSE, AuditAction.SCHEDULE_RESUME]


def test_a_viewer_reads_but_cannot_change_run_or_pause(client, acme, victor):
    schedule = make(acme)
    client.force_login(victor)
    page = client.get(f"{LIST}{schedule.pk}/change/")
    assert page.status_code == 200 and "data-schedule-action" not in page.content.decode()
    for action in ("run_now", "pause", "resume"):
        assert client.post(f"{LIST}{schedule.pk}/act/{action}/").status_code == 403
    assert client.post(LIST, {"action": "run_now", "_selected_action": [schedule.pk]}).status_code in (200, 302)
    assert not ScheduleRun.objects.exists() and Schedule.objects.get(pk=schedule.pk).enabled
    assert client.get(ADD).status_code == 403


def test_other_tenants_and_system_schedules_are_out_of_sight(client, acme, globex, alice):
    theirs, system = make(globex, name="globex nightly"), make(None, name="system nightly")
    client.force_login(alice)
    listing = client.get(LIST).content.decode()
    assert "globex nightly" not in listing and "system nightly" not in listing
    for schedule in (theirs, system):
        assert client.get(f"{LIST}{schedule.pk}/change/").status_code in (302, 404)
        assert client.post(f"{LIST}{schedule.pk}/act/run_now/").status_code == 404
    assert not ScheduleRun.objects.exists()


def test_superusers_schedule_system_work_of_any_kind(client, admin_user):
    client.force_login(admin_user)
    response = client.post(ADD, {**form(None, kind="maintenance.cleanup", payload="{}", name="cleanup")})
    assert response.status_code == 302, errors(response)
    assert Schedule.objects.get(name="cleanup").tenant is None
