"""Cron expressions: checked with errors that name the field, described in words, turned into fire times.

Besides the five fields and the @ aliases, `@every 15s` (or `@every 15 seconds`) repeats every N seconds,
at the instants that are whole multiples of N since the Unix epoch, on no wall clock: for work that must
run more often than once a minute, where the job's kind allows it (`@job_kind(repeat_min_seconds=...)`).

Fire times are computed on the schedule's local wall clock and only then placed on the time line, so
a daily 02:30 in Europe/Berlin fires once on both DST days: on the spring-forward day 02:30 does not
exist and the firing moves to 03:30 local (the instant one hour after 01:30), on the fall-back day
02:30 happens twice and fires the first time only.
"""
from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterBadDateError, CroniterError, croniter
from django.core.exceptions import ValidationError

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
FIELDS = [("minute", "0-59"), ("hour", "0-23"), ("day of month", "1-31"), ("month", "1-12 or jan-dec"),
          ("day of week", "0-6 or sun-sat")]
# Far enough for "0 0 29 2 1" (a Monday 29 February), near enough to give up on "never".
HORIZON = timedelta(days=366 * 30)


EVERY = re.compile(r"@every\s*(\d+)\s*(?:s|sec|secs|second|seconds)?", re.IGNORECASE)
EVERY_MAX = 86_400  # a day: longer intervals are what cron's fields say better


def normalise(expression: str) -> str:
    """The five-field form of an expression (aliases expanded, spaces collapsed); `@every Ns` as such."""
    text = " ".join(expression.split())
    if (seconds := every_seconds(text)) is not None:
        return f"@every {seconds}s"
    return ALIASES.get(text.lower(), text)


def every_seconds(expression: str) -> int | None:
    """N for `@every N seconds`, else None."""
    match = EVERY.fullmatch(" ".join(expression.split()))
    return int(match.group(1)) if match else None


def cron_check(expression: str) -> str:
    """The expression in its five-field form, or a ValidationError naming the field that is wrong."""
    text = normalise(expression)
    if (seconds := every_seconds(text)) is not None:
        if not 1 <= seconds <= EVERY_MAX:
            raise ValidationError(f"@every takes 1 to {EVERY_MAX:,} seconds, not {seconds:,}.")
        return text
    parts = text.split(" ")
    if not text:
        raise ValidationError("Enter a cron expression, for example '30 2 * * 1' (02:30 every Monday).")
    if len(parts) != 5:
        raise ValidationError(
            f"Has {len(parts)} field{'s' if len(parts) != 1 else ''}; a cron expression has 5: "
            "minute, hour, day of month, month, day of week (or one of " + ", ".join(ALIASES) + ").")
    for index, part in enumerate(parts):
        alone = ["*"] * 5
        alone[index] = part
        try:
            croniter(" ".join(alone))
        except (CroniterError, ValueError, KeyError):
            name, allowed = FIELDS[index]
            raise ValidationError(f"The {name} field {part!r} is not valid (allowed: {allowed}, "
                                  "with *, lists a,b, ranges a-b and steps */n).") from None
    try:
        next(fire_times(text, UTC, after=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2000, 1, 1, tzinfo=UTC) + HORIZON))
    except (StopIteration, CroniterBadDateError):
        raise ValidationError(f"{text!r} never fires (no such date).") from None
    return text


def timezone_check(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name`, or a ValidationError saying it is unknown."""
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not a known IANA time zone (for example 'Europe/Berlin' or 'UTC').") from None


@lru_cache(maxsize=1)
def timezone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def describe(expression: str) -> str:
    """The expression in words: 'At 02:30, only on Monday', 'Every 15 seconds'."""
    if (seconds := every_seconds(expression)) is not None:
        return f"Every {seconds} second{'s' if seconds != 1 else ''}"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return ExpressionDescriptor(normalise(expression), options).get_description()
    except Exception:  # a description is a courtesy; an odd expression still fires
        return normalise(expression)


def _on_time_line(local: datetime, tz) -> datetime:
    # fold=0: a wall time that happens twice is its first occurrence; one that does not exist (the
    # hour skipped in spring) takes the offset before the change, so it lands just after the gap.
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def fire_times(expression: str, tz, *, after: datetime, until: datetime | None = None) -> Iterator[datetime]:
    """Fire times (UTC, ascending, each once) strictly after `after`, up to `until` inclusive."""
    if (seconds := every_seconds(expression)) is not None:
        yield from _every(seconds, after=after, until=until)
        return
    walk = croniter(normalise(expression), after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3))
    last = after
    while True:
        moment = _on_time_line(walk.get_next(datetime), tz)
        if until is not None and moment > until:
            return
        if moment > last:
            last = moment
            yield moment


COUNT_CAP = 10_000


def _epoch_multiple(moment: datetime, seconds: int, *, up: bool) -> datetime:
    """The instant at a whole multiple of `seconds` since the epoch at or before `moment` (after it, with `up`)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = (moment - epoch) // timedelta(seconds=seconds)
    return epoch + timedelta(seconds=seconds) * (steps + 1 if up else steps)


def _every(seconds: int, *, after: datetime, until: datetime | None) -> Iterator[datetime]:
    moment = _epoch_multiple(after, seconds, up=True)  # strictly after: one step past the one at or before
    while until is None or moment <= until:
        yield moment
        moment += timedelta(seconds=seconds)


def latest_fire_times(expression: str, tz, *, after: datetime, until: datetime, limit: int) -> tuple[list[datetime], int]:
    """The latest `limit` fire times in (after, until], oldest first, and how many there are in all
    (counted up to COUNT_CAP). Walks back from `until`, so a schedule nobody served for a year costs
    at most COUNT_CAP steps.
    """
    if (seconds := every_seconds(expression)) is not None:
        last = _epoch_multiple(until, seconds, up=False)
        total = min(COUNT_CAP, max(0, (last - _epoch_multiple(after, seconds, up=False)) // timedelta(seconds=seconds)))
        shown = min(total, limit)
        return [last - timedelta(seconds=seconds * n) for n in range(shown - 1, -1, -1)], total
    walk = croniter(normalise(expression), until.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3))
    latest: list[datetime] = []
    total, previous = 0, None
    while total < COUNT_CAP:
        try:
            moment = _on_time_line(walk.get_prev(datetime), tz)
        except CroniterBadDateError:
            break
        if moment > until or (previous is not None and moment >= previous):
            continue
        if moment <= after:
            break
        previous = moment
        total += 1
        if len(latest) < limit:
            latest.append(moment)
    return list(reversed(latest)), total
