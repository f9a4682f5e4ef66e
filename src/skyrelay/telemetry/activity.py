"""The last hour of traffic per deployment, spend by team, and the latest errors: what /admin/stats shows.

Fed by each closed request context, like the counters of metrics.py, at a few list increments per attempt. Each
deployment keeps a ring of BUCKETS ten-second buckets (served and failed attempts, and the served attempts' summed
latency), so a dashboard opened now sees the whole hour, and a rate over any recent span is a sum of buckets. The
ring turns with the dispatcher's clock, lazily: the first context of a new bucket zeroes the buckets skipped since.
Spend adds each served attempt's cost at the configured prices to its deployment, per team: bounded by the
configuration. Errors are a bounded ring of the latest ones, written only for a request that went wrong somewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .metrics import CLIENT_CLOSED

BUCKET_S = 10  # seconds per bucket
BUCKETS = 360  # an hour of them
RECENT_ERRORS = 50


class Ring:
    """One deployment's last hour: attempts served, attempts failed, and seconds summed over the served ones; and
    what it served cost since start, per team (None: keys of no team, the master key)."""

    __slots__ = ("ok", "failed", "latency", "spend")

    def __init__(self):
        self.ok = [0] * BUCKETS
        self.failed = [0] * BUCKETS
        self.latency = [0.0] * BUCKETS
        self.spend: dict[str | None, float] = {}

    def clear(self, index: int) -> None:
        self.ok[index] = self.failed[index] = 0
        self.latency[index] = 0.0


class Activity:
    def __init__(self, deployments: list[Any], now: float):
        self.rings: dict[str, Ring] = {d.name: Ring() for d in deployments}
        self.deployments = {d.name: d for d in deployments}
        self.started = now
        self.started_wall = round(time.time(), 3)
        self.slot = self.first_slot = int(now // BUCKET_S)  # the current bucket's number since the clock's epoch
        self.errors: deque[dict] = deque(maxlen=RECENT_ERRORS)

    def reconfigure(self, deployments: list[Any]) -> None:
        """After a reload: rings for new deployments; a removed one's ring stays until its hour has passed."""
        self.deployments.update((d.name, d) for d in deployments)
        for d in deployments:
            self.rings.setdefault(d.name, Ring())

    def observe(self, ctx: Any, status: int, end: float, cost: float) -> None:
        """`cost`: USD of the attempt that served it (metrics.request_cost)."""
        slot = int(end // BUCKET_S)
        if slot != self.slot:
            self.advance(slot)
        index = slot % BUCKETS
        rings = self.rings
        wrong = status >= 400
        for attempt in ctx.attempts:
            ring = rings.get(attempt.deployment)
            if ring is None:  # a deployment added since start (a reload): counted from now on
                ring = rings[attempt.deployment] = Ring()
            result = attempt.status
            if result == "ok":
                ring.ok[index] += 1
                if attempt.end is not None:
                    ring.latency[index] += attempt.end - attempt.start
                if cost:
                    spend = ring.spend
                    spend[ctx.team] = spend.get(ctx.team, 0.0) + cost
            elif result == "failed":
                ring.failed[index] += 1
                wrong = True
        if wrong and status != CLIENT_CLOSED:  # a client that left is not an error to show
            self._note_errors(ctx, status)

    def advance(self, slot: int) -> None:
        """Move the ring to bucket `slot`, zeroing the buckets passed over (all of them after an idle hour)."""
        if slot <= self.slot:
            return
        for number in range(max(self.slot + 1, slot - BUCKETS + 1), slot + 1):
            index = number % BUCKETS
            for ring in self.rings.values():
                ring.clear(index)
        self.slot = slot

    def _note_errors(self, ctx: Any, status: int) -> None:
        when = round(time.time(), 3)
        noted = False
        for attempt in ctx.attempts:
            if attempt.status == "failed":
                noted = True
                self.errors.append({"time": when, "request_id": ctx.request_id, "model_group": ctx.group,
                                    "deployment": attempt.deployment, "vendor": attempt.vendor,
                                    "error": attempt.error_kind, "status": status})
        if not noted and ctx.error is not None and not isinstance(ctx.error, asyncio.CancelledError):
            self.errors.append({"time": when, "request_id": ctx.request_id, "model_group": ctx.group,
                                "deployment": None, "vendor": None, "error": type(ctx.error).__name__,
                                "status": status})

    # --- reading ----------------------------------------------------------------------------------------------

    def window(self, now: float, seconds: float) -> tuple[range, float]:
        """The bucket numbers covering the last `seconds` (the current bucket included), and the span in seconds
        they cover (shorter for a young process)."""
        self.advance(int(now // BUCKET_S))
        count = max(1, int(seconds // BUCKET_S))
        first = max(self.slot - count + 1, self.first_slot)
        span = min(now - first * BUCKET_S, now - self.started)
        return range(first, self.slot + 1), max(span, 1e-9)

    def totals(self, name: str, slots: range) -> tuple[int, int, float]:
        """Served, failed and summed served latency of a deployment over some buckets."""
        ring = self.rings.get(name)
        if ring is None:
            return 0, 0, 0.0
        ok = failed = 0
        latency = 0.0
        for number in slots:
            index = number % BUCKETS
            ok += ring.ok[index]
            failed += ring.failed[index]
            latency += ring.latency[index]
        return ok, failed, latency

    def series(self, name: str, slots: range) -> dict[str, list]:
        """Per bucket, oldest first: attempts served and failed, and the served ones' mean latency in ms."""
        ring = self.rings.get(name) or Ring()
        indexes = [number % BUCKETS for number in slots]
        return {"ok": [ring.ok[i] for i in indexes], "failed": [ring.failed[i] for i in indexes],
                "latency_ms": [round(ring.latency[i] * 1000 / ring.ok[i], 2) if ring.ok[i] else None
                               for i in indexes]}

    def spend(self) -> dict[tuple[str | None, str, str], float]:
        """USD since start per (team, model group, vendor)."""
        out: dict[tuple[str | None, str, str], float] = {}
        for name, ring in self.rings.items():
            d = self.deployments.get(name)
            if d is None:
                continue
            for team, usd in ring.spend.items():
                key = (team, d.group, d.vendor)
                out[key] = out.get(key, 0.0) + usd
        return out
