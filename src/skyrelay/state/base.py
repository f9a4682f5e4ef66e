"""What both state backends mean by a counter, a reservation and a refusal.

A request touches several counters at once (a key's rpm, tpm, max_parallel and budget, its team's): `reserve`
adds an amount to each, all or nothing, and refuses the lot if any one would pass its limit, saying how many
seconds until time alone would make room. `settle` later replaces each reserved amount with the real one (a
refund is a settle with zeros). Three kinds of counter:

- WINDOW: a sliding minute, counted in whole-second buckets (an amount reserved at second s leaves the window
  at second s + 60). An empty window lets one request through even if it alone is larger than the limit (a
  tpm smaller than one request would otherwise refuse it forever), as the routing quotas do.
- PERIOD: a total until `reset_at` (epoch seconds); the counter's name carries the period, so a new period
  starts from zero. Budgets.
- GAUGE: a level with no time in it: requests in flight (max_parallel); settled to zero when each ends.
- TALLY: a count with no limit over a window of its own (`reset_at` carries its bucket length in seconds, the
  limit is infinite): what the replicas sent each vendor of a capped group (the concentration cap). It never
  refuses; the routing snapshot reads its totals.

Times are wall-clock epoch seconds (replicas sharing one Redis must agree on them: keep their clocks in sync).
"""

from __future__ import annotations

WINDOW = "w"
PERIOD = "p"
GAUGE = "g"
TALLY = "n"
WINDOW_S = 60  # seconds: rpm and tpm are per minute
PERIOD_KEPT_S = 86400  # a budget counter outlives its period by a day: a request in flight at its end settles there
GAUGE_RETRY_S = 1.0  # a Retry-After for a full gauge: a slot frees when some request ends, time alone says nothing


class Item:
    """One counter: its name, its limit, its kind (and a PERIOD's end, 0 for one that never ends). Items do not
    change per request (the amounts do), so a caller builds them once and passes them on every reserve."""

    __slots__ = ("name", "limit", "kind", "reset_at", "cell", "home", "wire")

    def __init__(self, name: str, limit: float, kind: str, reset_at: float = 0.0):
        self.name = name
        self.limit = limit
        self.kind = kind
        self.reset_at = reset_at
        self.cell = None  # the memory backend's counter object, looked up once (`home`: the backend it is in)
        self.home = None
        self.wire = None  # (connection, id): its small-integer name on a worker's link to the supervisor (local.py)

    def __repr__(self) -> str:
        return f"Item({self.name!r}, limit={self.limit}, kind={self.kind!r})"


class Reservation:
    """What a successful `reserve` took (`amounts`, aligned with `items`; with a memory `plan`, the values its
    picks index), for `settle` to take back. `marks` is backend-specific (the memory backend's log entries,
    Redis's bucket); `local` is True when a Redis backend served it from its local fallback. `levels` are the
    counters' totals with this reservation in, and `oldest` each window's oldest counted second (0 for other
    kinds): what the rate-limit headers report (None from the memory backend, whose counters the headers read
    directly: `plan.cells`, aligned with the items)."""

    __slots__ = ("items", "amounts", "marks", "local", "settled", "levels", "oldest", "plan")

    def __init__(self, items, amounts, marks, local: bool = False, levels=None, oldest=None, plan=None):
        self.items = items
        self.amounts = amounts
        self.marks = marks
        self.local = local
        self.settled = False
        self.levels = levels
        self.oldest = oldest
        self.plan = plan



def split(reservation: Reservation, count: int) -> tuple[Reservation, Reservation]:
    """One reservation of several owners' counters as two: the first `count` items, and the rest (a key's counters
    and a deployment's, reserved in one call, are settled by each owner on its own)."""
    def cut(values, part: slice):
        return values[part] if isinstance(values, list) else values  # Redis marks: one bucket for every item

    marks = reservation.marks
    if reservation.plan is not None:  # the memory backend's (a fallback's): one entry per window, in item order
        windows = sum(1 for item in reservation.items[:count] if item.kind == WINDOW)
        marks = (marks[:windows], marks[windows:])
    parts = []
    for side, part in enumerate((slice(None, count), slice(count, None))):  # a plan is not cut: settle makes one
        piece = Reservation(reservation.items[part], reservation.amounts[part],
                            marks[side] if isinstance(marks, tuple) else cut(marks, part),
                            reservation.local, cut(reservation.levels, part), cut(reservation.oldest, part))
        parts.append(piece)
    return parts[0], parts[1]
