"""Cron expressions: fire times on a local wall clock across DST, errors that name the field, words."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from jobs.schedules import cron

BERLIN = ZoneInfo("Europe/Berlin")


def local_times(expression: str, tz, start: datetime, days: int) -> list[str]:
    times = cron.fire_times(expression, tz, after=start, until=start + timedelta(days=days))
    return [moment.astimezone(tz).isoformat() for moment in times]


def test_it_fires_a_daily_0230_in_berlin_once_on_the_spring_forward_day():
    # 2027-03-28: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist; the firing moves past the gap.
    assert local_times("30 2 * * *", BERLIN, datetime(2027, 3, 27, 12, tzinfo=UTC), 3) == [
        "2027-03-28T03:30:00+02:00", "2027-03-29T02:30:00+02:00", "2027-03-30T02:30:00+02:00"]


def test_it_fires_a_daily_0230_in_berlin_once_on_the_fall_back_day():
    # 2027-10-31: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; only the first fires.
    assert local_times("30 2 * * *", BERLIN, datetime(2027, 10, 30, 12, tzinfo=UTC), 3) == [
        "2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00", "2027-11-02T02:30:00+01:00"]


def test_it_never_repeats_an_instant_for_hourly_schedules_across_dst():
    spring = list(cron.fire_times("30 * * * *", BERLIN, after=datetime(2027, 3, 27, 23, tzinfo=UTC),
                                  until=datetime(2027, 3, 28, 4, tzinfo=UTC)))
    assert len(spring) == len(set(spring)) and spring == sorted(spring)
    assert [t.astimezone(BERLIN).strftime("%H:%M%z") for t in spring] == [
        "00:30+0100", "01:30+0100", "03:30+0200", "04:30+0200", "05:30+0200"]


def test_it_reads_fire_times_in_the_schedules_own_zone():
    new_york = ZoneInfo("America/New_York")
    first = next(cron.fire_times("0 9 * * 1-5", new_york, after=datetime(2026, 12, 1, 15, tzinfo=UTC)))
    assert first == datetime(2026, 12, 2, 14, tzinfo=UTC)  # 09:00 EST is 14:00 UTC


@pytest.mark.parametrize("expression, words", [
    ("61 * * * *", "minute field '61'"),
    ("0 24 * * *", "hour field '24'"),
    ("0 0 32 * *", "day of month field '32'"),
    ("0 0 * 13 *", "month field '13'"),
    ("0 0 * * 8", "day of week field '8'"),
    ("*/0 * * * *", "minute field '*/0'"),
    ("0 0 * * funday", "day of week field 'funday'"),
    ("* * *", "Has 3 fields; a cron expression has 5"),
    ("0 0 0 0 0 0 0", "Has 7 fields"),
    ("0 0 30 2 *", "never fires"),
    ("   ", "Enter a cron expression"),
])
def test_it_refuses_bad_expressions_naming_the_problem(expression, words):
    with pytest.raises(ValidationError) as excinfo:
        cron.cron_check(expression)
    assert words in " ".join(excinfo.value.messages)


def test_it_accepts_aliases_and_names_and_normalises_spacing():
    assert cron.cron_check("@daily") == "0 0 * * *"
    assert cron.cron_check("  30   2 * *   mon ") == "30 2 * * mon"
    assert cron.cron_check("0 9-17/2 * jan-jun 1-5") == "0 9-17/2 * jan-jun 1-5"


def test_it_refuses_unknown_time_zones_by_name():
    with pytest.raises(ValidationError) as excinfo:
        cron.timezone_check("Mars/Olympus_Mons")
    assert "'Mars/Olympus_Mons' is not a known IANA time zone" in excinfo.value.messages[0]
    assert cron.timezone_check("Europe/Berlin").key == "Europe/Berlin"


def test_it_says_expressions_in_words():
    assert cron.describe("30 2 * * 1") == "At 02:30, only on Monday"
    assert cron.describe("*/15 * * * *") == "Every 15 minutes"
    assert cron.describe("@daily") == "At 00:00"


def test_it_finds_the_latest_fire_times_without_walking_the_whole_gap():
    until = datetime(2027, 3, 30, tzinfo=UTC)
    latest, total = cron.latest_fire_times("* * * * *", UTC, after=until - timedelta(days=365), until=until, limit=2)
    assert latest == [until - timedelta(minutes=1), until]
    assert total == cron.COUNT_CAP  # a year of minutes is counted only up to the cap
    latest, total = cron.latest_fire_times("0 * * * *", UTC, after=until - timedelta(hours=3), until=until, limit=5)
    assert latest == [until - timedelta(hours=2), until - timedelta(hours=1), until] and total == 3
