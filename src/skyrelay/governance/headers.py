"""The rate-limit headers every governed answer carries, as OpenAI and Anthropic send them, so client code that
reads them keeps working: for requests and for tokens, the tightest of the key's and its team's per-minute
limits. Computed from what the reservation returned (each counter's total with this request in, and the oldest
second its window still counts), or on one
process from the counters themselves (the reservation's plan of cells): no extra state call.

`reset` is when the remaining count next grows (the oldest counted second leaves the minute): OpenAI's as a
duration ("1s", "1m0s"), Anthropic's as an RFC 3339 time.
"""

from __future__ import annotations

import datetime
import time

from ..state import WINDOW_S
from ..state.memory import NEVER
from .principals import REQUESTS


def rate_limit_headers(ctx) -> list[tuple[str, str]]:
    """The headers for a request whose key reserved its counters (empty for one without per-minute limits)."""
    principal = ctx.principal
    per_minute = principal.per_minute
    if not per_minute:
        return []
    admission = ctx.admission
    now = admission.now
    anthropic = ctx.path.endswith("/messages")
    plan = admission.plan  # the memory backend's: its counters themselves, microseconds after the reserve
    if plan is not None:
        if not anthropic:  # nearly every governed answer: one process, an OpenAI route
            return _openai_from_cells(principal, plan, now)
        levels = None
    else:
        reservation = admission.reservation
        # None: never reserved (no attempt made); local: counted at this replica's share while Redis is away, no
        # true figure.
        if reservation is None or reservation.local or reservation.levels is None:
            return []
        levels = reservation.levels
    limits = principal.limits
    out: list[tuple[str, str]] = []
    for unit, indexes in per_minute:
        best_room = None
        if plan is not None:
            cells = plan.cells
            for index in indexes:
                room = limits[index].limit - cells[index].total
                if best_room is None or room < best_room:
                    best, best_room = index, room
            entries = cells[best].entries
            first = entries[0][0] if entries else now
        else:
            for index in indexes:
                room = limits[index].limit - levels[index]
                if best_room is None or room < best_room:
                    best, best_room = index, room
            first = reservation.oldest[best]
        reset_s = first + WINDOW_S - now
        limit = limits[best]
        if anthropic:
            out += _headers(unit, limit.limit, best_room, reset_s, now, True)
            continue
        # Inline, with the constant headers made once: every governed OpenAI answer comes this way.
        whole = int(reset_s + 0.5)
        header = limit.header
        if header is None:  # made once per limit
            header = limit.header = (_OPENAI[unit][0], limit.text)
        out += (header, (_REMAINING[unit], str(int(best_room)) if best_room > 0 else "0"),
                _RESET[unit][whole] if 1 <= reset_s and whole <= WINDOW_S else (_OPENAI[unit][2], _duration(reset_s)))
    return out


def _openai_from_cells(principal, plan, now: float) -> list[tuple[str, str]]:
    """OpenAI's headers read off the memory backend's counters (`plan`: MemoryState.plan), with every constant
    header tuple made once per plan (`principal.shown`): what is left per request is the tightest room and its
    reset (a window's `expires`: when its oldest counted second leaves the minute; infinite when it is empty)."""
    shown = principal.shown
    if shown is None or shown[0] is not plan:
        shown = principal.shown = (plan, _constants(principal, plan))
    out: list[tuple[str, str]] = []
    for cell, limit, header, others, remaining, resets, reset_name in shown[1]:
        room = limit - cell.total
        for other, other_limit, other_header in others:  # the team's, beside the key's
            if other_limit - other.total < room:
                cell, room, header = other, other_limit - other.total, other_header
        expires = cell.expires
        # Same-type comparisons (`is` the one NEVER, a float 1.0 against the float reset) take CPython's fast path.
        reset_s = expires - now if expires is not NEVER else float(WINDOW_S)
        whole = int(reset_s + 0.5)
        out += (header, (remaining, "%d" % room if room > 0 else "0"),  # as str(int(room)), without two calls
                resets[whole] if 1.0 <= reset_s and whole <= WINDOW_S else (reset_name, _duration(reset_s)))
    return out


def _constants(principal, plan) -> tuple:
    """Per unit: its first counter's (cell, limit, limit header), the others' (cell, limit, limit header), and the
    remaining and reset header names."""
    limits = principal.limits
    out = []
    for unit, indexes in principal.per_minute:
        candidates = [(plan.cells[i], limits[i].limit, (_OPENAI[unit][0], limits[i].text)) for i in indexes]
        out.append((*candidates[0], tuple(candidates[1:]), _REMAINING[unit], _RESET[unit], _OPENAI[unit][2]))
    return tuple(out)


def refusal_headers(ctx, metric: str, limit: float, wait: float) -> list[tuple[str, str]]:
    """A refused request's headers: none left of the refusing limit, until its Retry-After."""
    unit = "requests" if metric == REQUESTS else "tokens"
    return _headers(unit, limit, 0, wait, time.time(), _is_anthropic(ctx))


def _is_anthropic(ctx) -> bool:
    path = ctx.path
    return path is not None and path.endswith("/messages")


_OPENAI = {unit: (f"x-ratelimit-limit-{unit}", f"x-ratelimit-remaining-{unit}", f"x-ratelimit-reset-{unit}")
           for unit in ("requests", "tokens")}
_ANTHROPIC = {unit: (f"anthropic-ratelimit-{unit}-limit", f"anthropic-ratelimit-{unit}-remaining",
                     f"anthropic-ratelimit-{unit}-reset") for unit in ("requests", "tokens")}


def _headers(unit: str, limit: float, remaining: float, reset_s: float, now: float,
             anthropic: bool) -> list[tuple[str, str]]:
    names = _ANTHROPIC[unit] if anthropic else _OPENAI[unit]
    reset_s = reset_s if reset_s > 0 else 0.0
    if anthropic:
        reset = datetime.datetime.fromtimestamp(now + reset_s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        reset = _duration(reset_s)
    return [(names[0], str(int(limit))), (names[1], str(int(remaining)) if remaining > 0 else "0"),
            (names[2], reset)]


def _spelt(seconds: int) -> str:
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60}s"


_WHOLE_SECONDS = [_spelt(n) for n in range(WINDOW_S + 1)]  # what nearly every answer says, spelt once
_REMAINING = {unit: names[1] for unit, names in _OPENAI.items()}
_RESET = {unit: [(names[2], spelt) for spelt in _WHOLE_SECONDS] for unit, names in _OPENAI.items()}


def _duration(seconds: float) -> str:
    """OpenAI's spelling: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(seconds + 0.5)
    return _WHOLE_SECONDS[whole] if whole <= WINDOW_S else _spelt(whole)
