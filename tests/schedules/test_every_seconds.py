"""Schedules that repeat every N seconds (`@every 15s`), for kinds that allow repeating within a minute."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
import time_machine
from django.test import Client

from jobs.schedules import cron
from jobs.schedules.models import MisfirePolicy, Schedule
from jobs.schedules.services import schedule_fire_due, schedule_save
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)

T0 = datetime(2026, 12, 7, 10, 0, 7, tzinfo=UTC)


def test_every_n_seconds_fires_at_whole_multiples_of_n_and_reads_as_words():
    assert cron.cron_check("@every 15 seconds") == "@every 15s" and cron.describe("@every 15s") == "Every 15 seconds"
    assert list(islice(cron.fire_times("@every 15s", UTC, after=T0), 3)) == [
        T0.replace(second=15), T0.replace(second=30), T0.replace(second=45)]
    latest, total = cron.latest_fire_times("@every 15s", UTC, after=T0, until=T0 + timedelta(minutes=1), limit=2)
    assert (latest, total) == ([T0.replace(second=45), T0.replace(minute=1, second=0)], 4)
    for wrong in ("@every 0s", "@every 90000s"):
        with pytest.raises(Exception, match="@every takes 1 to 86,400 seconds"):
            cron.cron_check(wrong)


@pytest.mark.django_db
def test_a_schedule_fires_every_ten_seconds_once_per_time(acme, alice):
    with time_machine.travel(T0, tick=False):
        schedule = schedule_save(schedule=Schedule(tenant=acme, name="heartbeat", kind="diagnostics.ping",
                                                   cron="@every 10s", misfire_policy=MisfirePolicy.ALL), user=alice)
        assert schedule.next_fire_at == T0.replace(second=10)
    with time_machine.travel(T0 + timedelta(seconds=25), tick=False):
        runs = schedule_fire_due(schedule_id=schedule.pk)
        assert [run.fire_at.second for run in runs] == [10, 20, 30]  # missed ones too: policy "all"
        assert schedule_fire_due(schedule_id=schedule.pk) == []  # each time once
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0.replace(second=40)


@pytest.mark.django_db
@pytest.mark.parametrize("kind, every, error", [
    ("tests.echo", "@every 15s", "may repeat at most once a minute here"),
    ("diagnostics.ping", "@every 5s", "may repeat at most every 10 seconds, not every 5"),
    ("diagnostics.ping", "@every 10s", None),
    ("tests.echo", "@every 120s", None),  # a minute or more: any kind
])
def test_the_schedule_form_lets_only_kinds_that_allow_it_repeat_within_a_minute(acme, alice, root, kind, every, error):
    client = Client()
    client.force_login(root)  # any kind may be picked by a superuser; the kind's own floor still applies
    response = client.post("/admin/schedules/schedule/add/", {
        "tenant": acme.pk, "name": "fast", "kind": kind, "payload": '{"text": "x"}' if kind == "tests.echo" else "{}",
        "priority": "5", "cron": every, "timezone": "UTC", "misfire_policy": "skip", "enabled": "on"})
    if error is None:
        assert response.status_code == 302 and Schedule.objects.get().cron == every
    else:
        assert response.status_code == 200 and error in response.content.decode()
        assert not Schedule.objects.exists()
