"""The one-process backend: plain objects, exact because one event loop runs every reserve to its end unbroken."""

from __future__ import annotations

import math
import time
from collections import deque

from .base import GAUGE_RETRY_S, PERIOD, PERIOD_KEPT_S, WINDOW, WINDOW_S, Item, Reservation

PLANS_KEPT = 10_000  # lists of items whose plan reserve_now keeps
SWEEP_S = 600.0  # how often, at most, the counters of periods a day over are dropped (looked at as new ones are made)
NEVER = math.inf  # the `expires` of a window with no entry
GONE = -1  # the second of an entry that left its window (no second the clock gives)
_NO_ENTRY = [None, 0]  # an empty window's `last`: of no second, so a reserve opens an entry (and never adds here)


class _Window:
    """A sliding minute: one [second, amount] entry per second with reservations, in order, and their total.
    `last` (the newest entry) and `expires` (when the oldest leaves the minute) spare a reserve the deque's ends.
    An entry that leaves is marked GONE: a settle then knows, without a clock, that it no longer counts."""

    __slots__ = ("entries", "total", "last", "expires")

    def __init__(self):
        self.entries: deque[list] = deque()
        self.total = 0  # an int while the amounts are (a request's are): int arithmetic is the faster
        self.last = _NO_ENTRY
        self.expires = NEVER

    def expire(self, second: int) -> None:
        entries = self.entries
        horizon = second - WINDOW_S
        while entries and entries[0][0] <= horizon:
            entry = entries.popleft()
            self.total -= entry[1]
            entry[0] = GONE
        if entries:
            self.expires = entries[0][0] + WINDOW_S
        else:
            self.last, self.expires = _NO_ENTRY, NEVER

    def open(self, second: int) -> list:
        """A new, empty entry for `second` (the first reservation in it)."""
        entry = self.last = [second, 0]
        entries = self.entries
        entries.append(entry)
        if len(entries) == 1:
            self.expires = second + WINDOW_S
        return entry

    def wait_for(self, needed: float, now: float) -> float:
        """Seconds until the oldest entries that free `needed` leave the window."""
        freed = 0.0
        for second, amount in self.entries:
            freed += amount
            if freed >= needed:
                return max(0.0, second + WINDOW_S - now)
        return float(WINDOW_S)


class _Level:
    """A PERIOD or GAUGE counter: a total with no time in it."""

    __slots__ = ("total",)

    def __init__(self):
        self.total = 0


class MemoryState:
    backend = "memory"
    shared = True  # nothing to lose touch with

    def __init__(self):
        self._cells: dict[str, _Window | _Level] = {}  # by counter name
        self._flags: set[str] = set()
        self._plans: dict[tuple, Plan] = {}  # by the items themselves (compared as objects): reserve_now
        self.born = time.time()  # what was spent before this is the ledger's to tell (seed)
        self._seeded: dict[str, float] = {}  # counter name -> the spend before `born` already added to it
        self._births: dict[str, float] = {}  # budget counter -> when it began counting, for budgets added later
        # Each budget counter's period gets its own (a name per day, week or month), so those of ended periods are
        # dropped, or a gateway running for months would keep one per key per day: PERIOD counter -> when it goes.
        self._drop_at: dict[str, float] = {}
        self._next_sweep = 0.0

    def _cell(self, item: Item) -> _Window | _Level:
        """The item's counter here, remembered on the item: a request's reserve then looks up nothing."""
        cell = self._cells.get(item.name)
        if cell is None:
            cell = self._cells[item.name] = _Window() if item.kind == WINDOW else _Level()
        if item.kind == PERIOD and item.reset_at and item.name not in self._drop_at:  # (a seed made it, or a reserve)
            self._drop_at[item.name] = item.reset_at + PERIOD_KEPT_S
            self._drop_ended()
        item.cell, item.home = cell, self
        return cell

    def _drop_ended(self) -> None:
        """Forget the budget counters of periods that ended over a day ago (a reservation still holding one keeps
        its cell; nothing reserves there any more)."""
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_S
        for name in [name for name, when in self._drop_at.items() if when <= now]:
            del self._drop_at[name]
            self._cells.pop(name, None)
            self._seeded.pop(name, None)
            self._births.pop(name, None)

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        return self.reserve_now(items, amounts, now)

    def plan(self, items: list[Item], picks: tuple[int, ...] | None = None, steady: tuple[int, ...] = ()) -> "Plan":
        """The items' counters here, resolved once (see Plan). `picks`: where each item's amount is in the values
        a reserve and a settle are given (None: the amounts are aligned with the items); `steady`: the picks whose
        amount a settle never changes (a request's count), whose counters it then does not walk."""
        return Plan(tuple(item.cell if item.home is self else self._cell(item) for item in items), items,
                    tuple(range(len(items))) if picks is None else picks, steady)

    def reserve_now(self, items: list[Item], amounts: list[float], now: float
                    ) -> tuple[Reservation | None, float, int]:
        """`reserve` without the coroutine (what the Redis backend's local fallback and the state process call).
        The plans of the lists of items seen are kept (a worker reserves the same few again and again)."""
        key = tuple(items)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= PLANS_KEPT:  # a fallback's share items are new each time: bound what they leave
                self._plans.clear()
            plan = self._plans[key] = self.plan(items)
        return self.reserve_planned(plan, items, amounts, now)

    def reserve_planned(self, plan: "Plan", items: list[Item], values, now: float
                        ) -> tuple[Reservation | None, float, int]:
        """`reserve_now` with the items' `plan` in hand, each amount `values[pick]` (see Plan.take)."""
        marks = plan.take(values, now)
        if marks is None:
            return None, *plan.refusal(items, values, now)
        # No levels: the rate-limit headers read the counters themselves (the plan's cells), microseconds later.
        return Reservation(items, values, marks, False, None, None, plan), 0.0, -1

    @staticmethod
    def figures(reservation: Reservation) -> tuple[list[float], list[float]]:
        """What a reservation's headers report, read off its counters (for a caller in another process)."""
        levels, oldest = [], []
        for item in reservation.items:
            cell = item.cell
            levels.append(cell.total)
            oldest.append(cell.entries[0][0] if item.kind == WINDOW and cell.entries else 0)
        return levels, oldest

    def settle(self, reservation: Reservation, values, now: float) -> None:
        """Replace each reserved amount by the real one (`values`, as the reserve's: picked by the plan, or aligned
        with the items); a reservation settles once (later calls do nothing). `now` is the interface's: a window
        here knows which of its entries still count."""
        if reservation.settled:
            return
        reservation.settled = True
        plan = reservation.plan or self.plan(reservation.items)
        plan.settle(reservation.marks, reservation.amounts, values)

    async def total(self, name: str, kind: str, now: float) -> float:
        cell = self._cells.get(name)
        if cell is None:
            return 0.0
        if kind == WINDOW:
            cell.expire(int(now))
        return cell.total

    async def birth(self, name: str | None = None, expiry: float = 0.0) -> float | None:
        """When these counters began counting (epoch seconds): budgets are seeded with what was spent before. With
        `name`, when that budget counter did (birth_of; `expiry` is Redis's: births here last as long as the
        counters)."""
        return self.born if name is None else self.birth_of(name)

    def birth_of(self, name: str) -> float:
        """When the budget counter `name` began counting: the first time this was asked (a budget added while the
        gateway runs: governance/seeding.py), so every worker that asks later seeds it for the same moment."""
        return self._births.setdefault(name, max(time.time(), self.born))

    async def seed_budget(self, name: str, spent: float, expiry: float) -> None:
        """`seed`, as the backends that need a round trip have it."""
        self.seed(name, spent, expiry)

    def seed(self, name: str, spent: float, expiry: float = 0.0) -> None:
        """A PERIOD counter also holds `spent`, what requests that began before `born` (or its own birth_of) spent
        in it (read from the ledger). Idempotent and convergent: seeding the same counter again adds only what a
        larger figure adds (workers each seed after shipping the spools they adopted; the last to finish read the
        most). `expiry` (epoch seconds; 0: never) is when the counter is dropped, as its first reserve would say:
        a seeded key that sends nothing in its period has no reserve to say it."""
        extra = spent - self._seeded.get(name, 0)
        if extra <= 0:
            return
        self._seeded[name] = spent
        cell = self._cells.get(name)
        if cell is None:
            cell = self._cells[name] = _Level()
        cell.total += extra
        if expiry and name not in self._drop_at:
            self._drop_at[name] = expiry
            self._drop_ended()

    async def set_flag(self, name: str) -> None:
        self._flags.add(name)

    async def clear_flag(self, name: str) -> None:
        self._flags.discard(name)

    async def flags(self) -> set[str]:
        return set(self._flags)

    def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def status(self) -> dict:
        return {"backend": "memory", "shared": True}


class Plan:
    """Some items' counters in one MemoryState, resolved once and laid out for the walks a reserve and a settle
    make: the windows and the other counters apart (no kind tested per counter), each with its limit and `pick`,
    the index of its amount in the values it is given. A caller that reserves the same items on every request (a
    key's, whose amounts are `(1, tokens, 1, cost)` picked by metric) keeps its plan: its reserves and settles then
    look nothing up and build no list of amounts. A settle walks only the counters whose amount may move: the
    `steady` picks' (a request's rpm) are left out altogether."""

    __slots__ = ("cells", "picks", "windows", "levels", "window_moves", "period_moves", "gauge_moves")

    def __init__(self, cells: tuple, items: list[Item], picks: tuple[int, ...], steady: tuple[int, ...]):
        self.cells = cells  # aligned with the items
        self.picks = picks
        windows, levels = [], []
        window_moves, period_moves, gauge_moves = [], [], []
        for item, cell, pick in zip(items, cells, picks):
            may_move = pick not in steady
            if item.kind == WINDOW:
                if may_move:
                    window_moves.append((pick, cell, len(windows)))  # its entry's index in a reserve's marks
                windows.append((cell, item.limit, pick))
            else:
                if may_move:
                    (period_moves if item.kind == PERIOD else gauge_moves).append((pick, cell))
                levels.append((cell, item.limit, pick))
        self.windows = windows
        self.levels = levels
        # What a settle may move, by kind (one flat walk each, no kind tested per counter): (pick, cell[, mark]).
        self.window_moves = tuple(window_moves)
        self.period_moves = tuple(period_moves)
        self.gauge_moves = tuple(gauge_moves)

    def take(self, values, now: float) -> list | None:
        """Add each counter's amount `values[pick]`, all or nothing: the entry each window added to (the marks a
        settle adjusts, aligned with `windows`), or None when one counter had no room (and nothing is kept). One
        pass that adds as it checks (a refusal is rare: it takes back what it added)."""
        second = int(now)
        marks = []
        for cell, limit, pick in self.windows:
            amount = values[pick]
            if cell.expires <= second:
                cell.expire(second)
            total = cell.total
            grown = total + amount
            if grown > limit and total:  # an empty window has room for anything
                self._take_back(values, marks, None)
                return None
            entry = cell.last
            if entry[0] != second:  # one entry per second: a busy key's window stays short
                entry = cell.open(second)
            entry[1] += amount
            cell.total = grown
            marks.append(entry)
        for cell, limit, pick in self.levels:
            total = cell.total + values[pick]
            if total > limit:
                self._take_back(values, marks, cell)
                return None
            cell.total = total
        return marks

    def _take_back(self, values, marks: list, refusing) -> None:
        """Undo what `take` added before the refusing counter: every window's `marks`, then the levels up to the
        `refusing` one (None when a window refused)."""
        for (cell, _, pick), entry in zip(self.windows, marks):
            entry[1] -= values[pick]
            cell.total -= values[pick]
        for cell, _, pick in self.levels if refusing is not None else ():
            if cell is refusing:
                break
            cell.total -= values[pick]

    def refusal(self, items: list[Item], values, now: float) -> tuple[float, int]:
        """After a refused `take`: the seconds until time alone makes room, and the index of the counter that waits
        longest (it sets the Retry-After: every one must have room)."""
        refused = None
        for item, cell, pick in zip(items, self.cells, self.picks):
            amount = values[pick]
            if item.kind == WINDOW:
                if cell.total and cell.total + amount > item.limit:
                    refused = _longest(refused, item, cell.wait_for(cell.total + amount - item.limit, now))
            elif cell.total + amount > item.limit:
                refused = _longest(refused, item, max(0.0, item.reset_at - now) if item.kind == PERIOD
                                   else GAUGE_RETRY_S)
        return refused[1], items.index(refused[0])

    def settle(self, marks: list, reserved, values) -> None:
        """Replace each amount `take` added (`reserved`) by the real one (`values`, picked alike). Only the amounts
        that may move are walked (a request's rpm never does), and a counter whose amount did not move is left. An
        entry still in its window takes the change, even one past the minute that no reserve has expired yet (its
        window's total is still the sum of its entries, whatever leaves later takes its amount with it)."""
        for pick, cell, mark in self.window_moves:
            delta = values[pick] - reserved[pick]
            if delta:
                entry = marks[mark]
                if entry[0] is not GONE:  # one that left its window left the total (expire assigns GONE)
                    entry[1] += delta
                    cell.total += delta
        for pick, cell in self.period_moves:
            delta = values[pick] - reserved[pick]
            if delta:
                cell.total += delta
        for pick, cell in self.gauge_moves:  # a gauge stops at zero
            level = cell.total + values[pick] - reserved[pick]
            cell.total = level if level > 0 else 0


def _longest(refused: tuple | None, item: Item, wait: float) -> tuple:
    """The refusing counter that waits longest: it sets the Retry-After (every one must have room)."""
    return (item, wait) if refused is None or wait > refused[1] else refused
