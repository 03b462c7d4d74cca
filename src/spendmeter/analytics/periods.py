"""Time windows from user input, shared by the cost API (`from`, `to`, `days`) and the CLI (`--since`,
`--until`, `--days`). All UTC.

- `2025-06-01` as a start is that day's 00:00; as an end it includes the whole day (the window ends at the
  next midnight), so `from=2025-06-01&to=2025-06-30` is all of June.
- `2025-06-01T12:00:00Z` (or any ISO-8601 time; no offset means UTC) is an exact instant; an end is exclusive.
- `days=N`: today and the N-1 days before it (UTC), so `days=1` is today so far.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from spendmeter.analytics.queries import Window

MAX_DAYS = 3660


class BadInput(ValueError):
    """A parameter the caller got wrong: the message names it and says what is accepted."""


def parse_when(text: str, *, name: str, end: bool = False) -> datetime:
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise BadInput(f"{name}: expected a date (2025-06-01) or an ISO-8601 time (2025-06-01T12:00:00Z), "
                       f"got {text!r}") from None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def parse_days(text: str, *, name: str = "days") -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(f"{name}: expected a whole number of days from 1 to {MAX_DAYS}, got {text!r}")
    return days


def window(
    since: str | None = None,
    until: str | None = None,
    days: str | int | None = None,
    *,
    names: tuple[str, str, str] = ("from", "to", "days"),
    now: datetime | None = None,
) -> Window:
    """The window the caller asked for; `days` and `since` together are refused (which one wins is unclear)."""
    if days is not None and since is not None:
        raise BadInput(f"give either {names[0]} or {names[2]}, not both")
    end = parse_when(until, name=names[1], end=True) if until else None
    if days is not None:
        n = days if isinstance(days, int) else parse_days(days, name=names[2])
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        start = datetime.combine(today - timedelta(days=n - 1), time(), tzinfo=UTC)
        return Window(start, end)
    start = parse_when(since, name=names[0]) if since else None
    if start is not None and end is not None and end <= start:
        raise BadInput(f"{names[1]} must be after {names[0]}")
    return Window(start, end)
