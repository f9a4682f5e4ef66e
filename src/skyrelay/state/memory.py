"""The one-process backend: plain dicts, exact because one event loop runs every reserve to its end unbroken."""

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


class MemoryState:
    backend = "memory"
    shared = True  # nothing to lose touch with

    def __init__(self):
        self._windows: dict[str, _Window] = {}
        self._levels: dict[str, float] = {}  # PERIOD and GAUGE counters
        self._flags: set[str] = set()

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        return self.reserve_now(items, amounts, now)

    def reserve_now(self, items: list[Item], amounts: list[float], now: float
                    ) -> tuple[Reservation | None, float, int]:
        """`reserve` without the coroutine (what the Redis backend's local fallback calls)."""
        second = int(now)
        horizon = second - WINDOW_S
        windows, levels = self._windows, self._levels
        refused = None
        for item, amount in zip(items, amounts):
            if item.kind == WINDOW:
                window = windows.get(item.name)
                if window is None:
                    continue  # empty: room for anything
                entries = window.entries
                if entries and entries[0][0] <= horizon:
                    window.expire(second)
                if window.total and window.total + amount > item.limit:
                    refused = _longest(refused, item, window.wait_for(window.total + amount - item.limit, now))
            elif levels.get(item.name, 0.0) + amount > item.limit:
                refused = _longest(refused, item, max(0.0, item.reset_at - now) if item.kind == PERIOD
                                   else GAUGE_RETRY_S)
        if refused is not None:
            return None, refused[1], items.index(refused[0])
        marks, totals, oldest = [], [], []
        for item, amount in zip(items, amounts):
            if item.kind == WINDOW:
                window = windows.get(item.name)
                if window is None:
                    window = windows[item.name] = _Window()
                entries = window.entries
                last = entries[-1] if entries else None
                if last is not None and last[0] == second:  # one entry per second: a busy key's window stays short
                    last[1] += amount
                    entry = last
                else:
                    entry = [second, amount]
                    entries.append(entry)
                window.total += amount
                marks.append(entry)
                totals.append(window.total)
                oldest.append(entries[0][0])
            else:
                level = levels[item.name] = levels.get(item.name, 0.0) + amount
                marks.append(None)
                totals.append(level)
                oldest.append(0)
        return Reservation(items, amounts, marks, levels=totals, oldest=oldest), 0.0, -1

    def settle(self, reservation: Reservation, amounts: list[float], now: float) -> None:
        """Replace each reserved amount by the real one; a reservation settles once (later calls do nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        horizon = int(now) - WINDOW_S
        levels = self._levels
        for item, entry, reserved, amount in zip(reservation.items, reservation.marks, reservation.amounts, amounts):
            delta = amount - reserved
            if not delta:
                continue
            if entry is not None:
                if entry[0] > horizon:  # still in the window (an expired one left the total already)
                    entry[1] += delta
                    self._windows[item.name].total += delta
            else:
                level = levels.get(item.name, 0.0) + delta
                levels[item.name] = level if level > 0 or item.kind == PERIOD else 0.0

    async def total(self, name: str, kind: str, now: float) -> float:
        if kind == WINDOW:
            window = self._windows.get(name)
            if window is None:
                return 0.0
            window.expire(int(now))
            return window.total
        return self._levels.get(name, 0.0)

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
