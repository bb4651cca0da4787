"""Alerts: crossing a threshold opens one incident and tells the operators once (one email, one webhook
POST); while still crossed nothing more is sent; recovery sends one recovery notice and closes it. An
incident opens on OPS_ALERT_OPEN_AFTER crossed checks in a row and resolves on OPS_ALERT_RESOLVE_AFTER
clear ones, so a value flapping at its threshold does not open and close one every minute."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import checks as system_checks
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs import enqueue
from jobs.stats import SUMMARIZE_KIND
from jobs.mail.models import OutboundEmail
from jobs.maintenance import CLEANUP_KIND
from jobs.schedules.services import system_schedules_ensure
from jobs.models import Job, Status
from jobs.ops.models import CheckStreak, Incident
from jobs.ops.services import ALERTS_KIND, WEBHOOK_KIND, alerts_check
from jobs.schedules.models import MisfirePolicy, Schedule
from jobs.webhooks.models import new_secret
from tests.jobs.helpers import work
from tests.ops.conftest import jobs_in

pytestmark = pytest.mark.django_db(transaction=True)

OPERATORS = ["ops@example.com", "oncall@example.com"]


@pytest.fixture
def alerting(settings, smtp, receiver):
    settings.OPS_ALERTS_ENABLED = True
    settings.OPS_ALERT_EMAILS = OPERATORS
    settings.OPS_ALERT_WEBHOOK_URL = receiver.url
    settings.OPS_MAX_FAILED_PER_HOUR = 2
    # These tests are about the notices, checked a moment apart: one check opens, one resolves. The
    # runs of checks that open and resolve by default have their own tests below.
    settings.OPS_ALERT_OPEN_AFTER = settings.OPS_ALERT_RESOLVE_AFTER = 1
    return smtp, receiver


def run_check() -> dict:
    """The alert check as the schedule runs it: a system job on a worker, then its notices' jobs."""
    job = enqueue(ALERTS_KIND, tenant=None, payload={})
    work()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.last_error
    return job.result


def test_it_tells_once_when_a_check_crosses_and_once_when_it_recovers(alerting, acme):
    smtp, receiver = alerting
    failed = jobs_in(acme, Status.FAILED, 3)

    assert run_check()["opened"] == ["failures"]
    [incident] = Incident.objects.all()
    assert incident.is_open and incident.value == 3 and incident.threshold == 2
    assert "3 job(s) failed in the last hour" in incident.summary
    [mail] = smtp.received
    assert sorted(mail.message["To"].split(", ")) == sorted(OPERATORS)
    assert mail.message["Subject"].strip().startswith("Incident: 3 job(s) failed in the last hour")
    assert f"/admin/ops/incident/{incident.pk}/change/" in mail.message.get_content()
    [opened] = receiver.bodies()
    assert opened["type"] == "ops.incident.opened" and opened["incident"]["check"] == "failures"
    assert opened["incident"]["value"] == 3 and opened["text"].startswith("Incident:")
    assert "acme" not in str(opened).lower()

    jobs_in(acme, Status.FAILED, 2)
    result = run_check()
    assert result["opened"] == [] and result["ongoing"] == ["failures"]
    assert len(smtp.received) == 1 and len(receiver.requests) == 1  # still crossed: nothing more is sent
    incident.refresh_from_db()
    assert incident.is_open and incident.peak_value == 5 and "5 job(s)" in incident.last_summary

    Job.objects.filter(status=Status.FAILED).update(updated_at=timezone.now() - timedelta(hours=2))
    assert run_check()["resolved"] == ["failures"]
    incident.refresh_from_db()
    assert not incident.is_open and "0 job(s) failed" in incident.resolution
    assert Incident.objects.count() == 1
    assert len(smtp.received) == 2 and smtp.received[1].message["Subject"].strip().startswith("Resolved: failures")
    [_, resolved] = receiver.bodies()
    assert resolved["type"] == "ops.incident.resolved" and resolved["incident"]["resolved_at"]

    assert run_check() == {"status": "ok", "opened": [], "resolved": [], "ongoing": [], "crossing": [],
                           "clearing": []}
    assert len(smtp.received) == 2 and len(receiver.requests) == 2
    assert len(failed) == 3


def test_a_second_crossing_after_recovery_is_a_new_incident(alerting, acme):
    smtp, receiver = alerting
    jobs_in(acme, Status.FAILED, 3)
    run_check()
    Job.objects.filter(status=Status.FAILED).update(updated_at=timezone.now() - timedelta(hours=2))
    run_check()
    jobs_in(acme, Status.FAILED, 3)
    assert run_check()["opened"] == ["failures"]
    assert Incident.objects.count() == 2 and Incident.objects.filter(resolved_at__isnull=True).count() == 1
    assert len(smtp.received) == 3 and len(receiver.requests) == 3


def test_two_checks_at_once_open_one_incident(alerting, acme):
    smtp, receiver = alerting
    jobs_in(acme, Status.FAILED, 3)
    # Both read "no incident open" before either wrote: the partial unique index lets one through.
    from jobs.ops import health, services

    check = health.readiness().checks["failures"]
    assert services.incident_open(check=check, now=timezone.now()) is not None
    assert services.incident_open(check=check, now=timezone.now()) is None
    work()
    assert Incident.objects.count() == 1 and len(smtp.received) == 1 and len(receiver.requests) == 1


def test_it_signs_the_ops_webhook_when_a_secret_is_set(alerting, acme, settings):
    _, receiver = alerting
    settings.OPS_ALERT_EMAILS = []
    settings.OPS_ALERT_WEBHOOK_SECRET = secret = new_secret()
    jobs_in(acme, Status.FAILED, 3)
    run_check()
    [(headers, body)] = receiver.requests
    assert Webhook(secret).verify(body, headers)["type"] == "ops.incident.opened"
    assert headers["webhook-id"] == f"incident_{Incident.objects.get().pk}_opened"


def test_it_retries_a_webhook_that_fails_and_refuses_a_private_address(alerting, acme, settings):
    _, receiver = alerting
    receiver.answer(503)
    jobs_in(acme, Status.FAILED, 3)
    run_check()
    [notice] = Job.objects.filter(kind=WEBHOOK_KIND)
    assert notice.status == Status.RETRYING and "HTTP 503" in notice.last_error

    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    Job.objects.filter(pk=notice.pk).update(run_at=timezone.now())
    from jobs.reconciler import reconcile

    reconcile()
    work()
    notice.refresh_from_db()
    assert notice.status == Status.FAILED and "Refused" in notice.last_error and "loopback" in notice.last_error
    assert len(receiver.requests) == 1


def test_it_does_nothing_while_alerts_are_off(settings, smtp, acme):
    settings.OPS_ALERTS_ENABLED = False
    settings.OPS_MAX_FAILED_PER_HOUR = 1
    jobs_in(acme, Status.FAILED, 3)
    assert "skipped" in alerts_check()
    assert not Incident.objects.exists() and smtp.received == []


def test_the_check_runs_every_minute_from_a_built_in_system_schedule_when_alerts_are_on(settings):
    settings.OPS_ALERTS_ENABLED = False
    system_schedules_ensure()
    assert sorted(Schedule.objects.values_list("kind", flat=True)) == [CLEANUP_KIND, SUMMARIZE_KIND]

    settings.OPS_ALERTS_ENABLED = True
    system_schedules_ensure()
    system_schedules_ensure()  # made once, whoever asks again
    schedule = Schedule.objects.get(kind=ALERTS_KIND)
    assert (schedule.tenant, schedule.cron, schedule.timezone, schedule.misfire_policy) == (
        None, "* * * * *", "UTC", MisfirePolicy.SKIP)
    assert schedule.enabled and schedule.name == "Alert check"
    assert timedelta(0) < schedule.next_fire_at - timezone.now() <= timedelta(minutes=1)


# --- runs of checks: a flapping value opens and resolves nothing -------------------------------------


@pytest.fixture
def minutes(alerting, settings, acme):
    """The alert check a minute at a time, with the default runs (2 to open, 5 to resolve), over 3
    failed jobs: crossed under a threshold of 2, clear under one of 10."""
    settings.OPS_ALERT_OPEN_AFTER, settings.OPS_ALERT_RESOLVE_AFTER = 2, 5
    jobs_in(acme, Status.FAILED, 3)
    start = timezone.now().replace(second=0, microsecond=0)

    def check(minute: int, *, crossed: bool) -> dict:
        settings.OPS_MAX_FAILED_PER_HOUR = 2 if crossed else 10
        result = alerts_check(now=at(minute))
        if result["opened"] or result["resolved"]:
            work()  # the notices' jobs: left queued with no worker, they would cross the workers check
        return result

    def at(minute: int):
        return start + timedelta(minutes=minute)

    check.at = at
    return check


def told() -> list[str]:
    """The operators' notices stored so far (each an email and a webhook job), oldest first."""
    events = list(OutboundEmail.objects.filter(key__startswith="ops-incident:").order_by("created_at")
                  .values_list("key", flat=True))
    assert Job.objects.filter(kind=WEBHOOK_KIND).count() == len(events)
    return [key.rsplit(":", 1)[1] for key in events]


def test_it_opens_nothing_and_tells_nobody_for_one_crossed_check(minutes):
    assert minutes(0, crossed=True)["crossing"] == ["failures"]
    assert minutes(1, crossed=False)["crossing"] == []
    assert not Incident.objects.exists() and told() == []


def test_it_opens_one_incident_on_two_crossed_checks_in_a_row_and_tells_once(minutes):
    minutes(0, crossed=True)
    assert minutes(1, crossed=True)["opened"] == ["failures"]
    assert minutes(2, crossed=True)["ongoing"] == ["failures"]
    [incident] = Incident.objects.all()
    assert incident.is_open and incident.opened_at == minutes.at(0) and incident.last_seen_at == minutes.at(2)
    assert told() == ["opened"]


def test_it_neither_opens_nor_tells_while_a_value_flaps_at_its_threshold(minutes):
    for minute in range(20):
        minutes(minute, crossed=minute % 2 == 0)
    assert not Incident.objects.exists() and told() == []


def test_a_flapping_value_keeps_an_open_incident_open_and_tells_nobody_again(minutes):
    minutes(0, crossed=True)
    minutes(1, crossed=True)
    for minute in range(2, 22):
        minutes(minute, crossed=minute % 2 == 1)
    assert Incident.objects.filter(resolved_at__isnull=True).count() == Incident.objects.count() == 1
    assert told() == ["opened"]


def test_it_resolves_on_the_fifth_clear_check_in_a_row_and_tells_once(minutes):
    minutes(0, crossed=True)
    minutes(1, crossed=True)
    for minute in range(2, 6):
        assert minutes(minute, crossed=False)["clearing"] == ["failures"]
    assert Incident.objects.get().is_open and told() == ["opened"]
    assert minutes(6, crossed=False)["resolved"] == ["failures"]
    incident = Incident.objects.get()
    assert not incident.is_open and incident.resolved_at == minutes.at(2)  # back under since the first clear
    assert told() == ["opened", "resolved"]
    assert minutes(7, crossed=False) | {"status": None} == {
        "status": None, "opened": [], "resolved": [], "ongoing": [], "crossing": [], "clearing": []}
    assert told() == ["opened", "resolved"]


def test_a_crossed_check_starts_the_count_to_resolve_again(minutes):
    minutes(0, crossed=True)
    minutes(1, crossed=True)
    for minute in range(2, 6):
        minutes(minute, crossed=False)
    assert minutes(6, crossed=True)["ongoing"] == ["failures"]
    for minute in range(7, 11):
        assert minutes(minute, crossed=False)["clearing"] == ["failures"]
    assert minutes(11, crossed=False)["resolved"] == ["failures"]
    assert told() == ["opened", "resolved"]


def test_the_same_minutes_check_run_twice_counts_once(minutes):
    minutes(0, crossed=True)
    assert minutes(0, crossed=True)["crossing"] == ["failures"]
    assert not Incident.objects.exists()
    assert minutes(1, crossed=True)["opened"] == ["failures"]


def test_two_checks_running_at_once_count_one_minute_once_and_open_once(minutes, settings):
    settings.OPS_MAX_FAILED_PER_HOUR = 2
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def both_at(minute: int) -> None:
        def run() -> None:
            try:
                start.wait(timeout=10)
                alerts_check(now=minutes.at(minute))
            except BaseException as exc:  # noqa: BLE001  (reported by the test, not lost in the thread)
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    both_at(0)
    assert CheckStreak.objects.get(check_name="failures").count == 1 and not Incident.objects.exists()
    both_at(1)
    work()  # the notices
    both_at(2)
    assert failures == []
    assert CheckStreak.objects.get(check_name="failures").count == 3
    assert Incident.objects.count() == 1 and told() == ["opened"]


@pytest.mark.parametrize("setting, value, error", [
    ("OPS_DOWN_CHECKS", ["failures", "nope"], "ops.E001"),
    ("OPS_DOWN_CHECKS", ["database"], "ops.E001"),
    ("OPS_MAX_WAITING", -1, "ops.E002"),
    ("OPS_ALERT_EMAILS", ["ops@example.com", "not an address"], "ops.E003"),
    ("OPS_ALERT_WEBHOOK_URL", "ftp://example.com/hook", "ops.E004"),
    ("OPS_ALERT_WEBHOOK_SECRET", "whsec_short", "ops.E005"),
])
def test_it_refuses_bad_settings_naming_them(settings, setting, value, error):
    setattr(settings, setting, value)
    found = [problem for problem in system_checks.run_checks() if problem.id == error]
    assert found and setting in found[0].msg
    if setting == "OPS_ALERT_EMAILS":
        assert "OPS_ALERT_EMAILS[1]" in found[0].msg
