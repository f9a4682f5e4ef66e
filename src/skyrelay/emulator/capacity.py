"""A cloud at its limits: rate quotas, serving slots with a queue, provisioned throughput, prompt caching.

Each model (on azure: each deployment) has its own `Lane`, built from the cloud's capacity settings with that
model's `per_model` overrides. A chat request passes its lane once its body is valid (as real clouds check
auth and shape first), in this order:
1. quota: one bucket per configured limit (requests, tokens, input_tokens, output_tokens). A bucket holds the
   limit and refills continuously over `window_s` (the token bucket Anthropic documents; OpenAI's resets
   report the same "time until full"). Requests are checked over `rpm_window_s` (azure: 1 s, so 600 RPM
   admits 10 requests a second). Tokens are charged at arrival: prompt + max output (max_tokens, else the
   most the emulated model writes, times n), as Azure and Bedrock estimate them.
2. provisioned: a leaky bucket of utilisation draining `tpm` per minute, charged (prompt - cached + max
   output) at arrival and corrected to the real output at completion; while it is above 100% new requests
   fast-fail (Azure PTU).
3. concurrency: `concurrency` slots; later requests wait in FIFO order in a queue of `queue`; beyond that the
   cloud refuses as overloaded. With `load_slowdown`, TTFT and time per token grow with the share of busy slots.
A refusal raises `CapacityRefused`; capacity_wire.py renders it in the cloud's own format. Everything that
tells time takes `now` from an injected clock, so the logic is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any, Callable

from .capacity_config import NO_CAPACITY, CapacityPlan, CapacitySettings
from .generate import ChatInput, Generation
from .prefix_cache import PrefixCache
from .timing import Pacer

LIMITS = ("requests", "tokens", "input_tokens", "output_tokens")
_RPM_WINDOW_DEFAULTS = {"azure": 1.0}  # Azure enforces RPM over 1-10 s periods, not over the minute


def limit_bucket(quota, limit: int, is_requests: bool, kind: str, now: float) -> "Bucket":
    """The bucket enforcing one of a quota's limits: per window_s, except requests, which a cloud may enforce over
    a shorter period (Azure), holding the same rate. Shared by the emulator and the simulator's clouds."""
    period, capacity = quota.window_s, float(limit)
    if is_requests:
        period = quota.rpm_window_s or min(_RPM_WINDOW_DEFAULTS.get(kind, period), period)
        capacity = max(limit * period / quota.window_s, 1.0)
    return Bucket(capacity, period, now)


class Bucket:
    """`used` drains at `capacity` per `window_s`: a token bucket when admission asks whether a charge fits,
    a leaky bucket when it asks whether the level is still at or below capacity."""

    __slots__ = ("capacity", "rate", "used", "stamp")

    def __init__(self, capacity: float, window_s: float, now: float):
        self.capacity = capacity
        self.rate = capacity / window_s
        self.used = 0.0
        self.stamp = now

    def level(self, now: float) -> float:
        if now > self.stamp:
            self.used = max(self.used - (now - self.stamp) * self.rate, 0.0)
            self.stamp = now
        return self.used

    def fits(self, amount: float, now: float) -> bool:
        return self.level(now) + amount <= self.capacity + 1e-9

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (infinite when it never can)."""
        if amount > self.capacity:
            return math.inf
        return max(self.level(now) + amount - self.capacity, 0.0) / self.rate

    def overflow_wait(self, now: float) -> float:
        """Seconds until the level is back at capacity (leaky-bucket admission)."""
        return max(self.level(now) - self.capacity, 0.0) / self.rate

    def charge(self, amount: float, now: float) -> None:
        self.used = max(self.level(now) + amount, 0.0)

    def remaining(self, now: float) -> int:
        return max(int(self.capacity - self.level(now)), 0)

    def reset_in(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return self.level(now) / self.rate


class Gate:
    """`slots` serving slots and a FIFO queue of `queue` waiting requests."""

    __slots__ = ("slots", "queue", "in_use", "_waiters")

    def __init__(self, slots: int, queue: int):
        self.slots, self.queue = slots, queue
        self.in_use = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> bool | None:
        """True: a slot at once; None: a slot after waiting in the queue; False: the queue is full."""
        if self.in_use < self.slots and not self._waiters:
            self.in_use += 1
            return True
        if len(self._waiters) >= self.queue:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the client left: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return None

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self.in_use -= 1


class CapacityRefused(Exception):
    """The cloud refuses a request for capacity. `reason`: a LIMITS name (quota), "provisioned" or "overloaded"."""

    def __init__(self, reason: str, retry_after: float | None, lane: "Lane", model: str, requested: int):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.lane = lane
        self.model = model
        self.requested = requested  # what the refused limit would have been charged
        self.quota = lane.snapshot(lane.clock())


class Counters:
    __slots__ = ("served", "queued", "throttled", "cache_hits", "cached_tokens", "prompt_tokens")

    def __init__(self):
        self.served = 0  # admitted
        self.queued = 0  # admitted after waiting for a slot
        self.throttled: dict[str, int] = {}  # refusal reason -> count
        self.cache_hits = 0
        self.cached_tokens = 0
        self.prompt_tokens = 0  # of the admitted requests: cached_tokens / prompt_tokens is the token hit rate

    def to_dict(self) -> dict[str, Any]:
        return {"served": self.served, "queued": self.queued, "throttled": dict(self.throttled),
                "cache_hits": self.cache_hits, "cached_tokens": self.cached_tokens,
                "prompt_tokens": self.prompt_tokens}


class Lane:
    """The capacity of one model or deployment."""

    def __init__(self, settings: CapacitySettings, protocol: str, default_output: int,
                 clock: Callable[[], float]):
        self.settings = settings
        self.clock = clock
        self.default_output = default_output
        now = clock()
        self.buckets: dict[str, Bucket] = {}
        self.limits: dict[str, int] = {}  # the limit each bucket reports (per window_s)
        quota = settings.quota
        if quota is not None:
            for name, limit in zip(LIMITS, (quota.rpm, quota.tpm, quota.itpm, quota.otpm), strict=True):
                if limit is None:
                    continue
                self.buckets[name] = limit_bucket(quota, limit, name == "requests", protocol, now)
                self.limits[name] = limit
        provisioned = settings.provisioned
        self.provisioned = Bucket(provisioned.tpm, provisioned.window_s, now) if provisioned else None
        self.gate = Gate(settings.concurrency, settings.queue) if settings.concurrency else None
        self.cache = PrefixCache(settings.prompt_cache) if settings.prompt_cache else None
        self.counters = Counters()

    def snapshot(self, now: float) -> list[tuple[str, int, int, float]]:
        """(limit name, limit, remaining, seconds until full) of each quota bucket."""
        return [(name, self.limits[name], bucket.remaining(now), bucket.reset_in(now))
                for name, bucket in self.buckets.items()]

    async def admit(self, model: str, inp: ChatInput, gen: Generation, pacer: Pacer) -> "Ticket":
        now = self.clock()
        prompt = gen.prompt_tokens
        output = (inp.max_tokens if inp.max_tokens is not None else self.default_output) * max(inp.n, 1)
        prefixes = self.cache.prefixes(inp) if self.cache is not None else []
        cached = min(self.cache.cached_tokens(prefixes, now), prompt) if prefixes else 0
        charges = {"requests": 1, "tokens": prompt + output, "input_tokens": prompt - cached,
                   "output_tokens": output}
        self._check_quota(model, charges, now)
        estimate = prompt - cached + output
        if self.provisioned is not None and self.provisioned.level(now) > self.provisioned.capacity:
            self._refuse("provisioned", self.provisioned.overflow_wait(now), model, estimate)
        for name, bucket in self.buckets.items():
            bucket.charge(charges[name], now)
        if self.provisioned is not None:
            self.provisioned.charge(estimate, now)
        ticket = Ticket(self, self.snapshot(now), estimate, prompt - cached + gen.completion_tokens)
        if self.gate is not None:
            try:
                entered = await self.gate.enter()
            except asyncio.CancelledError:  # the client left while queued: it used nothing
                ticket.refund(charges)
                raise
            if entered is False:
                ticket.refund(charges)
                self._refuse("overloaded", None, model, 1)
            ticket.holds_slot = True
            self.counters.queued += entered is None
            self._slow_down(pacer)
        if prefixes:
            self.cache.remember(prefixes, self.clock())
        gen.cached_tokens = cached
        counters = self.counters
        counters.served += 1
        counters.prompt_tokens += prompt
        if cached:
            counters.cache_hits += 1
            counters.cached_tokens += cached
        return ticket

    def _check_quota(self, model: str, charges: dict[str, int], now: float) -> None:
        worst: tuple[float, str] | None = None
        for name, bucket in self.buckets.items():
            if not bucket.fits(charges[name], now):
                wait = bucket.wait_for(charges[name], now)
                if worst is None or wait > worst[0]:
                    worst = (wait, name)
        if worst is not None:
            wait, name = worst
            # a request larger than the whole limit never fits: ask for a full window, as a hint to go elsewhere
            self._refuse(name, wait if wait != math.inf else self.settings.quota.window_s, model, charges[name])

    def _refuse(self, reason: str, retry_after: float | None, model: str, requested: int) -> None:
        table = self.counters.throttled
        table[reason] = table.get(reason, 0) + 1
        raise CapacityRefused(reason, retry_after, self, model, requested)

    def _slow_down(self, pacer: Pacer) -> None:
        slowdown = self.settings.load_slowdown
        if slowdown is None:
            return
        load = self.gate.in_use / self.gate.slots
        pacer.ttft *= 1.0 + slowdown.ttft * load
        pacer.token_interval *= 1.0 + slowdown.tokens * load


class Ticket:
    """One admitted request's hold on its lane, given back once its answer is over."""

    __slots__ = ("lane", "quota", "estimate", "actual", "holds_slot", "holds_stream", "released")

    def __init__(self, lane: Lane, quota: list[tuple[str, int, int, float]], estimate: int, actual: int):
        self.lane = lane
        self.quota = quota  # the snapshot after this request's charge, for the rate-limit headers
        self.estimate, self.actual = estimate, actual
        self.holds_slot = False
        self.holds_stream = False  # a streamed answer gives the ticket back when the stream is over
        self.released = False

    def refund(self, charges: dict[str, int]) -> None:
        now = self.lane.clock()
        for name, bucket in self.lane.buckets.items():
            bucket.charge(-charges[name], now)
        if self.lane.provisioned is not None:
            self.lane.provisioned.charge(-self.estimate, now)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.holds_slot:
            self.lane.gate.release()
        if self.lane.provisioned is not None:  # PTU: the estimate is corrected to what was really produced
            self.lane.provisioned.charge(self.actual - self.estimate, self.lane.clock())


class Capacity:
    """The lanes of one cloud, built on first use from its plan."""

    def __init__(self, plan: CapacityPlan = NO_CAPACITY, protocol: str = "openai", default_output: int = 24,
                 clock: Callable[[], float] = time.monotonic):
        self.plan = plan
        self.protocol = protocol
        self.default_output = default_output
        self.clock = clock
        self.enabled = not plan.unlimited
        self.lanes: dict[str, Lane] = {}

    def lane(self, key: str) -> Lane | None:
        lane = self.lanes.get(key)
        if lane is None:
            settings = self.plan.settings_for(key)
            if settings.unlimited:
                return None
            lane = self.lanes[key] = Lane(settings, self.protocol, self.default_output, self.clock)
        return lane

    async def admit(self, key: str, inp: ChatInput, gen: Generation, pacer: Pacer) -> Ticket | None:
        lane = self.lane(key)
        return None if lane is None else await lane.admit(key, inp, gen, pacer)

    def counters(self) -> dict[str, Any]:
        by_model = {key: lane.counters.to_dict() for key, lane in self.lanes.items()}
        total = Counters().to_dict()
        for counts in by_model.values():
            for name, value in counts.items():
                if name == "throttled":
                    for reason, n in value.items():
                        total["throttled"][reason] = total["throttled"].get(reason, 0) + n
                else:
                    total[name] += value
        return {"total": total, "by_model": by_model}

    def reset_counters(self) -> None:
        for lane in self.lanes.values():
            lane.counters = Counters()
