"""Calendar periods (day, week, month) in a configured timezone.

A period is named by its first local date (`2024-03-31` for the day, the Monday for the week, the 1st for
the month). That name is what the spend stores key on: it is stable across processes and restarts, and
needs no clock arithmetic to compare. Boundaries are local midnights, converted to UTC only to say when
the period ends, so a DST change makes a day 23 or 25 hours long instead of shifting the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """One concrete period: `[start, end)` as aware UTC datetimes, and the name the stores key on."""

    period: Period
    start_date: date  # first local date of the period
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return self.start_date.isoformat()


def first_local_date(period: Period, local_day: date) -> date:
    if period == "day":
        return local_day
    if period == "week":
        return local_day - timedelta(days=local_day.weekday())  # ISO weeks start on Monday
    if period == "month":
        return local_day.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def next_first_local_date(period: Period, start: date) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return date(start.year + 1, 1, 1) if start.month == 12 else date(start.year, start.month + 1, 1)
    raise ValueError(f"unknown period {period!r}")


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The instant local `day` begins, in UTC.

    In the few zones whose DST jump happens at midnight, 00:00 does not exist; zoneinfo then resolves it
    with the pre-transition offset, which lands on the first instant that does exist (01:00 local).
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window(period: Period, now: datetime, tz: ZoneInfo) -> PeriodWindow:
    """The period that contains the instant `now` (aware), in timezone `tz`."""
    if now.tzinfo is None:
        raise ValueError("budget clock must return an aware datetime")
    start_date = first_local_date(period, now.astimezone(tz).date())
    end_date = next_first_local_date(period, start_date)
    start, end = local_midnight_utc(start_date, tz), local_midnight_utc(end_date, tz)
    return PeriodWindow(period, start_date, start, end)
