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
from .principals import REQUESTS

CRLF = "\r\n"


def rate_limit_headers(ctx, anthropic: bool = False) -> list[tuple[str, str]]:
    """The headers for a request whose key reserved its counters (empty for one without per-minute limits):
    OpenAI's, or `anthropic` ones (the route says which: its path is not tested on every answer)."""
    principal = ctx.principal
    admission = ctx.admission
    now = admission.now
    plan = admission.plan  # the memory backend's: its counters themselves, microseconds after the reserve
    if plan is not None and not anthropic:  # nearly every governed answer: one process, an OpenAI route
        # Read off the counters as one header entry (see _block): per unit, the tightest room and its reset (a
        # window's `expires`: when its oldest counted second leaves the minute; infinite when it is empty).
        shown = principal.shown
        if shown is None or shown[0] is not plan:
            shown = principal.shown = (plan, _block(principal, plan))
        block = shown[1]
        if block is None:  # a key with a budget or max_parallel but no per-minute limit
            return []
        name, units = block
        value = ""
        for cell, limit, prefix, other, other_limit, other_prefix, in_ms, in_s in units:
            room = limit - cell.total
            if other is not None and other_limit - other.total < room:  # the team's, tighter than the key's
                cell, room, prefix = other, other_limit - other.total, other_prefix
            left = cell.expires - now  # > 0: the reserve just expired the window at this second
            # The tables are keyed by whole floats: a float's floor division is cheaper than an int() call.
            if left < 1.0:
                reset = in_ms[(left * 1000) // 1] if left > 0 else in_ms[0.0]
            elif left < _ROUNDS_IN_MINUTE:
                reset = in_s[(left + 0.5) // 1]
            else:  # an empty window (NEVER): all of it is there
                reset = in_s[_MINUTE]
            value = f"{value}{prefix}{room if room > 0 else 0}{reset}"
        return [(name, value)]
    per_minute = principal.per_minute
    if not per_minute:
        return []
    if plan is None:
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
        out += _headers(unit, limits[best].limit, best_room, first + WINDOW_S - now, now, anthropic)
    return out


def _block(principal, plan) -> tuple | None:
    """The rate-limit headers as one entry of the header list, which net.messages.response_head writes as
    `name: value`: the first limit header's name, and a value that carries every other line (CRLF-joined: the
    gateway's own digits and spellings only, never a client's or an upstream's text), so an answer appends one
    entry instead of six. Per unit, made once per plan: the text up to the remaining count (the limit line, then
    the remaining header's name) of its first counter and of its other one (the team's, or None), and the unit's
    reset lines (_RESET_LINES). The first unit's text starts at the limit's value: the entry's name precedes it."""
    if not principal.per_minute:
        return None
    limits = principal.limits
    units = []
    for unit, indexes in principal.per_minute:
        limit_name, remaining_name, _ = _OPENAI[unit]
        lead = "" if not units else f"{CRLF}{limit_name}: "
        candidates = [(plan.cells[i], limits[i].limit, f"{lead}{limits[i].text}{CRLF}{remaining_name}: ")
                      for i in indexes]
        other = candidates[1] if len(candidates) > 1 else (None, 0, "")
        units.append((*candidates[0], *other, *_RESET_LINES[unit]))
    return _OPENAI[principal.per_minute[0][0]][0], tuple(units)


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
# Per unit, its reset header's line as an answer from the plan spells it, made once: by milliseconds under a
# second (0-999), by whole seconds up to the minute (0-60), keyed by those numbers as floats.
_RESET_LINES = {unit: ({float(ms): f"{CRLF}{names[2]}: {ms}ms" for ms in range(1000)},
                       {float(n): f"{CRLF}{names[2]}: {spelt}" for n, spelt in enumerate(_WHOLE_SECONDS)})
                for unit, names in _OPENAI.items()}
_MINUTE = float(WINDOW_S)
_ROUNDS_IN_MINUTE = WINDOW_S + 0.5  # a reset under this rounds to a whole second of the minute


def _duration(seconds: float) -> str:
    """OpenAI's spelling: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(seconds + 0.5)
    return _WHOLE_SECONDS[whole] if whole <= WINDOW_S else _spelt(whole)
