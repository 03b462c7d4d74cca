"""Calendar periods in a timezone: day, ISO week (Monday), month, and DST-length days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spendmeter.budgets.periods import window

UTC_TZ = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(*args: int, tz: ZoneInfo = UTC_TZ) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_day_boundaries_utc() -> None:
    w = window("day", at(2024, 5, 1, 23, 59, 59), UTC_TZ)
    assert w.key == "2024-05-01"
    assert w.start == at(2024, 5, 1) and w.end == at(2024, 5, 2)
    assert window("day", at(2024, 5, 2, 0, 0, 0), UTC_TZ).key == "2024-05-02"


def test_week_starts_monday() -> None:
    sunday = at(2024, 5, 5, 23, 59, 59)  # a Sunday
    assert window("week", sunday, UTC_TZ).key == "2024-04-29"  # the Monday before
    monday = at(2024, 5, 6)
    w = window("week", monday, UTC_TZ)
    assert w.key == "2024-05-06" and w.end == at(2024, 5, 13)
    # a week that spans a month and a year boundary
    assert window("week", at(2025, 1, 1, 12), UTC_TZ).key == "2024-12-30"


@pytest.mark.parametrize(
    ("now", "key", "end"),
    [
        (at(2024, 1, 31, 23, 59, 59), "2024-01-01", at(2024, 2, 1)),
        (at(2024, 2, 29, 12), "2024-02-01", at(2024, 3, 1)),  # leap year
        (at(2024, 12, 31, 23, 59, 59, 999999), "2024-12-01", at(2025, 1, 1)),
        (at(2025, 1, 1), "2025-01-01", at(2025, 2, 1)),
    ],
)
def test_month_rollover(now: datetime, key: str, end: datetime) -> None:
    w = window("month", now, UTC_TZ)
    assert w.key == key and w.end == end


def test_local_day_differs_from_utc_day() -> None:
    # 23:30 UTC on 1 May is 01:30 on 2 May in Berlin (UTC+2 in summer)
    assert window("day", at(2024, 5, 1, 23, 30), BERLIN).key == "2024-05-02"
    assert window("day", at(2024, 5, 1, 21, 59, 59), BERLIN).key == "2024-05-01"
    assert window("day", at(2024, 5, 1, 22, 0, 0), BERLIN).key == "2024-05-02"


def test_dst_spring_forward_day_is_23_hours() -> None:
    w = window("day", at(2024, 3, 10, 12, tz=NEW_YORK), NEW_YORK)  # clocks jump 02:00 -> 03:00
    assert w.key == "2024-03-10"
    assert w.end - w.start == timedelta(hours=23)
    assert w.start == datetime(2024, 3, 10, 5, tzinfo=UTC)  # EST midnight
    assert w.end == datetime(2024, 3, 11, 4, tzinfo=UTC)  # EDT midnight


def test_dst_fall_back_day_is_25_hours() -> None:
    w = window("day", at(2024, 11, 3, 1, 30, tz=NEW_YORK), NEW_YORK)
    assert w.end - w.start == timedelta(hours=25)
    # the last second of the long day and the first of the next
    assert window("day", w.end - timedelta(seconds=1), NEW_YORK).key == "2024-11-03"
    assert window("day", w.end, NEW_YORK).key == "2024-11-04"


def test_month_containing_dst_change_in_berlin() -> None:
    w = window("month", at(2024, 3, 31, 12, tz=BERLIN), BERLIN)
    assert w.start_date == date(2024, 3, 1)
    assert w.start == datetime(2024, 2, 29, 23, tzinfo=UTC)  # CET midnight
    assert w.end == datetime(2024, 3, 31, 22, tzinfo=UTC)  # CEST midnight


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window("day", datetime(2024, 1, 1), UTC_TZ)


def test_midnight_that_does_not_exist_starts_the_day_at_the_first_real_instant() -> None:
    santiago = ZoneInfo("America/Santiago")  # on 8 Sep 2024 clocks jump from 00:00 to 01:00
    w = window("day", datetime(2024, 9, 8, 12, tzinfo=santiago), santiago)
    assert w.start == datetime(2024, 9, 8, 4, tzinfo=UTC)  # 01:00 local, -03:00
    assert w.end - w.start == timedelta(hours=23)
    previous = window("day", w.start - timedelta(seconds=1), santiago)
    assert previous.key == "2024-09-07" and previous.end == w.start
