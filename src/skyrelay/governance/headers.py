"""The rate-limit headers every governed answer carries, as OpenAI and Anthropic send them, so client code that
reads them keeps working: for requests and for tokens, the tightest of the key's and its team's per-minute
limits. Computed from what the reservation returned (each counter's total with this request in, and the oldest
second its window still counts): no extra state read.

`reset` is when the remaining count next grows (the oldest counted second leaves the minute): OpenAI's as a
duration ("1s", "1m0s"), Anthropic's as an RFC 3339 time.
"""

from __future__ import annotations

import datetime
import time

from ..state import WINDOW_S
from .principals import REQUESTS


def rate_limit_headers(ctx, now: float | None = None) -> list[tuple[str, str]]:
    """The headers for a request whose key reserved its counters (empty for one without per-minute limits)."""
    admission = ctx.admission
    reservation = admission.reservation if admission is not None else None
    if reservation is None or reservation.levels is None:
        return []
    per_minute = ctx.principal.per_minute
    if not per_minute:
        return []
    now = time.time() if now is None else now
    limits, levels, oldest = ctx.principal.limits, reservation.levels, reservation.oldest
    anthropic = _is_anthropic(ctx)
    out: list[tuple[str, str]] = []
    for unit, indexes in per_minute:
        tightest = indexes[0]
        for index in indexes[1:]:
            if limits[index].limit - levels[index] < limits[tightest].limit - levels[tightest]:
                tightest = index
        out += _headers(unit, limits[tightest].limit, limits[tightest].limit - levels[tightest],
                        max(0.0, oldest[tightest] + WINDOW_S - now), now, anthropic)
    return out


def refusal_headers(ctx, metric: str, limit: float, wait: float) -> list[tuple[str, str]]:
    """A refused request's headers: none left of the refusing limit, until its Retry-After."""
    unit = "requests" if metric == REQUESTS else "tokens"
    return _headers(unit, limit, 0, wait, time.time(), _is_anthropic(ctx))


def _is_anthropic(ctx) -> bool:
    path = ctx.path
    return path is not None and path.endswith("/messages")


def _headers(unit: str, limit: float, remaining: float, reset_s: float, now: float,
             anthropic: bool) -> list[tuple[str, str]]:
    remaining = str(max(0, int(remaining)))
    if anthropic:
        at = datetime.datetime.fromtimestamp(now + reset_s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [(f"anthropic-ratelimit-{unit}-limit", str(int(limit))),
                (f"anthropic-ratelimit-{unit}-remaining", remaining),
                (f"anthropic-ratelimit-{unit}-reset", at)]
    return [(f"x-ratelimit-limit-{unit}", str(int(limit))), (f"x-ratelimit-remaining-{unit}", remaining),
            (f"x-ratelimit-reset-{unit}", _duration(reset_s))]


def _duration(seconds: float) -> str:
    """OpenAI's spelling: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(round(seconds))
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60}s"
