"""The one-process backend: plain objects, exact because one event loop runs every reserve to its end unbroken."""

from __future__ import annotations

from collections import deque

from .base import GAUGE_RETRY_S, PERIOD, WINDOW, WINDOW_S, Item, Reservation


class _Window:
    """A sliding minute: one [second, amount] entry per second with reservations, in order, and their total."""

    __slots__ = ("entries", "total")

    def __init__(self):
        self.entries: deque[list] = deque()
        self.total = 0.0

    def expire(self, second: int) -> None:
        entries = self.entries
        horizon = second - WINDOW_S
        while entries and entries[0][0] <= horizon:
            self.total -= entries.popleft()[1]

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
        self.total = 0.0


class MemoryState:
    backend = "memory"
    shared = True  # nothing to lose touch with

    def __init__(self):
        self._cells: dict[str, _Window | _Level] = {}  # by counter name
        self._flags: set[str] = set()

    def _cell(self, item: Item) -> _Window | _Level:
        """The item's counter here, remembered on the item: a request's reserve then looks up nothing."""
        cell = self._cells.get(item.name)
        if cell is None:
            cell = self._cells[item.name] = _Window() if item.kind == WINDOW else _Level()
        item.cell, item.home = cell, self
        return cell

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        return self.reserve_now(items, amounts, now)

    def plan(self, items: list[Item]) -> tuple:
        """The items' counters here, resolved once: `(cell, limit, kind)` per item. A caller that reserves the same
        items on every request (a key's) keeps it, and its reserves and settles then look nothing up."""
        return tuple((item.cell if item.home is self else self._cell(item), item.limit, item.kind) for item in items)

    def reserve_now(self, items: list[Item], amounts: list[float], now: float
                    ) -> tuple[Reservation | None, float, int]:
        """`reserve` without the coroutine (what the Redis backend's local fallback calls)."""
        return self.reserve_planned(self.plan(items), items, amounts, now)

    def reserve_planned(self, plan: tuple, items: list[Item], amounts, now: float
                        ) -> tuple[Reservation | None, float, int]:
        """`reserve_now` with the items' `plan` in hand. One pass that adds as it checks (a refusal is rare: it
        takes back what it added, then finds the counter that waits longest)."""
        second = int(now)
        horizon = second - WINDOW_S
        marks = []
        for (cell, limit, kind), amount in zip(plan, amounts):
            total = cell.total
            if kind == WINDOW:
                entries = cell.entries
                if entries and entries[0][0] <= horizon:
                    cell.expire(second)
                    total = cell.total
                if total and total + amount > limit:  # an empty window has room for anything
                    return self._refuse(items, amounts, marks, now)
                if entries and entries[-1][0] == second:  # one entry per second: a busy key's window stays short
                    entry = entries[-1]
                    entry[1] += amount
                else:
                    entry = [second, amount]
                    entries.append(entry)
                marks.append(entry)
            else:
                if total + amount > limit:
                    return self._refuse(items, amounts, marks, now)
                marks.append(None)
            cell.total = total + amount
        # No levels: the rate-limit headers read the counters themselves (the plan's cells), microseconds later.
        return Reservation(items, amounts, marks, plan=plan), 0.0, -1

    @staticmethod
    def figures(reservation: Reservation) -> tuple[list[float], list[float]]:
        """What a reservation's headers report, read off its counters (for a caller in another process)."""
        levels, oldest = [], []
        for item in reservation.items:
            cell = item.cell
            levels.append(cell.total)
            oldest.append(cell.entries[0][0] if item.kind == WINDOW and cell.entries else 0)
        return levels, oldest

    def _refuse(self, items: list[Item], amounts: list[float], marks: list, now: float) -> tuple[None, float, int]:
        """Take back the amounts added before the refusing counter, then name the counter that waits longest."""
        for item, amount, entry in zip(items, amounts, marks):
            if entry is not None:
                entry[1] -= amount
            item.cell.total -= amount
        refused = None
        for item, amount in zip(items, amounts):
            cell = item.cell if item.home is self else self._cell(item)
            if item.kind == WINDOW:
                if cell.total and cell.total + amount > item.limit:
                    refused = _longest(refused, item, cell.wait_for(cell.total + amount - item.limit, now))
            elif cell.total + amount > item.limit:
                refused = _longest(refused, item, max(0.0, item.reset_at - now) if item.kind == PERIOD
                                   else GAUGE_RETRY_S)
        return None, refused[1], items.index(refused[0])

    def settle(self, reservation: Reservation, amounts: list[float], now: float) -> None:
        """Replace each reserved amount by the real one; a reservation settles once (later calls do nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        horizon = int(now) - WINDOW_S
        plan = reservation.plan or self.plan(reservation.items)
        for (cell, _, kind), entry, reserved, amount in zip(plan, reservation.marks, reservation.amounts, amounts):
            delta = amount - reserved
            if not delta:
                continue
            if entry is not None:
                if entry[0] > horizon:  # still in the window (an expired one left the total already)
                    entry[1] += delta
                    cell.total += delta
            else:
                level = cell.total + delta
                cell.total = level if level > 0 or kind == PERIOD else 0.0

    async def total(self, name: str, kind: str, now: float) -> float:
        cell = self._cells.get(name)
        if cell is None:
            return 0.0
        if kind == WINDOW:
            cell.expire(int(now))
        return cell.total

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


def _longest(refused: tuple | None, item: Item, wait: float) -> tuple:
    """The refusing counter that waits longest: it sets the Retry-After (every one must have room)."""
    return (item, wait) if refused is None or wait > refused[1] else refused
