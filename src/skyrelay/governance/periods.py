"""Budget periods: calendar day, week (from Monday) and month in UTC, or `total` (never resets)."""

from __future__ import annotations

import datetime

_UTC = datetime.timezone.utc
_current: dict[str, tuple[str, float, float]] = {}  # period -> (id, end, start): recomputed when it ends


def current(period: str, now: float) -> tuple[str, float]:
    """The id of the period `now` is in (part of the counter's name) and its end in epoch seconds (0: never)."""
    found = _current.get(period)
    if found is None or not (found[2] <= now < found[1] or period == "total"):
        found = _current[period] = _compute(period, now)
    return found[0], found[1]


def started(period: str, now: float) -> float:
    """When the period `now` is in began, in epoch seconds (0 for `total`)."""
    current(period, now)
    return _current[period][2]


def _compute(period: str, now: float) -> tuple[str, float, float]:
    if period == "total":
        return "total", 0.0, 0.0
    day = datetime.datetime.fromtimestamp(now, _UTC).date()
    if period == "day":
        start, end = day, day + datetime.timedelta(days=1)
    elif period == "week":
        start = day - datetime.timedelta(days=day.weekday())
        end = start + datetime.timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    return (f"{period[0]}{start.isoformat()}", _epoch(end), _epoch(start))


def _epoch(day: datetime.date) -> float:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=_UTC).timestamp()


def describe_reset(reset_at: float) -> str:
    if not reset_at:
        return "it does not reset (period: total)"
    return "it resets at " + datetime.datetime.fromtimestamp(reset_at, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
