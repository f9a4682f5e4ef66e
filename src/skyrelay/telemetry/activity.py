"""The last hour of traffic per deployment and the latest errors: what /admin/stats shows beside the counters.

The request path pays nothing for the hour: once a second (the telemetry's ticker, and again when /admin/stats
is read) `sample` adds what the counters of metrics.py gained since the last look to the current ten-second
bucket of each deployment's ring, so a dashboard opened now sees the whole hour and a rate over any recent span is
a sum of buckets. A bucket gets what was counted while it was the current one (a second late at most). Errors are
a bounded ring of the latest ones, written only for a request that went wrong somewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .metrics import CLIENT_CLOSED, Metrics

BUCKET_S = 10  # seconds per bucket
BUCKETS = 360  # an hour of them
RECENT_ERRORS = 50


class Ring:
    """One deployment's last hour: attempts served, attempts failed, and seconds summed over the served ones."""

    __slots__ = ("ok", "failed", "latency")

    def __init__(self):
        self.ok = [0] * BUCKETS
        self.failed = [0] * BUCKETS
        self.latency = [0.0] * BUCKETS

    def clear(self, index: int) -> None:
        self.ok[index] = self.failed[index] = 0
        self.latency[index] = 0.0


class Activity:
    def __init__(self, deployments: list[Any], now: float):
        self.rings: dict[str, Ring] = {d.name: Ring() for d in deployments}
        self.started = now
        self.started_wall = round(time.time(), 3)
        self.slot = self.first_slot = int(now // BUCKET_S)  # the current bucket's number since the clock's epoch
        self.seen: dict[str, tuple[int, int, float]] = {}  # per deployment: the counters at the last sample
        self.errors: deque[dict] = deque(maxlen=RECENT_ERRORS)

    def reconfigure(self, deployments: list[Any]) -> None:
        """After a reload: rings for new deployments; a removed one's ring stays until its hour has passed."""
        for d in deployments:
            self.rings.setdefault(d.name, Ring())

    def sample(self, metrics: Metrics | None, now: float) -> None:
        """Add what each deployment's attempt counters gained since the last sample to the current bucket."""
        self.advance(int(now // BUCKET_S))
        if metrics is None:  # metrics.enabled: false: nothing is counted, the rings stay empty
            return
        totals: dict[str, tuple[int, int, float]] = {}
        for (_, name), route in metrics.routes.items():
            ok, failed, latency = totals.get(name, (0, 0, 0.0))
            totals[name] = (ok + route.ok, failed + route.others.get("failed", 0), latency + route.latency.sum)
        index = self.slot % BUCKETS
        for name, (ok, failed, latency) in totals.items():
            before = self.seen.get(name)
            if before == (ok, failed, latency):
                continue
            ring = self.rings.get(name)
            if ring is None:
                ring = self.rings[name] = Ring()
            was_ok, was_failed, was_latency = before or (0, 0, 0.0)
            ring.ok[index] += ok - was_ok
            ring.failed[index] += failed - was_failed
            ring.latency[index] += latency - was_latency
            self.seen[name] = (ok, failed, latency)

    def advance(self, slot: int) -> None:
        """Move the ring to bucket `slot`, zeroing the buckets passed over (all of them after an idle hour)."""
        if slot <= self.slot:
            return
        for number in range(max(self.slot + 1, slot - BUCKETS + 1), slot + 1):
            index = number % BUCKETS
            for ring in self.rings.values():
                ring.clear(index)
        self.slot = slot

    def note_errors(self, ctx: Any, status: int) -> None:
        """A request that did not simply succeed at its first attempt: its failures, if it had any."""
        if status == CLIENT_CLOSED:  # a client that left is not an error to show
            return
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
        """Per bucket, oldest first: attempts served and failed, and the served ones' summed seconds (sums, so
        that several workers' buckets add up; stats.py turns them into means)."""
        ring = self.rings.get(name) or Ring()
        indexes = [number % BUCKETS for number in slots]
        return {"ok": [ring.ok[i] for i in indexes], "failed": [ring.failed[i] for i in indexes],
                "latency_s": [ring.latency[i] for i in indexes]}
