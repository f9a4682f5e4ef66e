"""One simulated cloud deployment for the event engine: the emulator's capacity model on a simulated clock.

Admission follows emulator/capacity.py step by step, with its own `Bucket`: the quota buckets (tokens charged at
arrival as prompt + output cap), the provisioned-throughput leaky bucket, then `concurrency` serving slots and a
FIFO queue of `queue`, beyond which the cloud refuses as overloaded. A request's service time is the emulator's
pacing: TTFT, then one token per 1/tokens_per_second, each varied by +-jitter (or, with `distribution:
exponential`, both scaled by one exponential draw, for M/M/c checks), grown by `load_slowdown` with the share of
busy slots when its slot is taken. What the gateway sees of a refusal follows the cloud's wire (capacity_wire.py):
which refusals are 429s and which carry a Retry-After.
"""

from __future__ import annotations

from collections import deque

from ..emulator.capacity import Bucket, limit_bucket
from .scenario import CloudModel

# Kinds whose 429 carries a Retry-After the gateway cools down for (the others throttle: 1 s, doubling).
_SENDS_RETRY_AFTER = {"azure", "anthropic"}
# Kinds whose "overloaded" answer is a 429 (Azure's capacity 429, Vertex's 429); elsewhere a 503 / 529.
_OVERLOAD_IS_429 = {"azure": 1.0, "vertex": None}
OUTAGE = "outage"
OVERLOADED = "overloaded"
QUOTA = "quota"
PROVISIONED = "provisioned"


class SimCloud:
    __slots__ = ("model", "kind", "slots", "queue", "in_use", "waiting", "buckets", "provisioned", "down",
                 "ttft", "interval", "jitter", "exponential", "slow_ttft", "slow_tokens", "cache", "cache_seen")

    def __init__(self, model: CloudModel, kind: str, now: float = 0.0):
        self.model = model
        self.kind = kind
        capacity = model.capacity
        self.slots = capacity.concurrency or 0  # 0: no limit
        self.queue = capacity.queue
        self.in_use = 0
        self.waiting: deque = deque()
        self.down = False
        self.set_quota(capacity.quota, now)
        provisioned = capacity.provisioned
        self.provisioned = Bucket(provisioned.tpm, provisioned.window_s, now) if provisioned else None
        self.ttft = model.ttft_ms / 1000
        self.interval = 1.0 / model.tokens_per_second
        self.jitter = model.jitter
        self.exponential = model.distribution == "exponential"
        slowdown = capacity.load_slowdown
        self.slow_ttft = slowdown.ttft if slowdown else 0.0
        self.slow_tokens = slowdown.tokens if slowdown else 0.0
        self.cache = capacity.prompt_cache
        self.cache_seen: dict[int, float] = {}

    def set_quota(self, quota, now: float) -> None:
        """(bucket, charge index) per configured limit: 0 requests, 1 tokens, 2 input tokens, 3 output tokens."""
        self.buckets = []
        if quota is None:
            return
        for index, limit in enumerate((quota.rpm, quota.tpm, quota.itpm, quota.otpm)):
            if limit is None:
                continue
            self.buckets.append((limit_bucket(quota, limit, index == 0, self.kind, now), index))

    def cached_tokens(self, prefix: int, prefix_tokens: int, prompt: int, now: float) -> int:
        """Tokens of the prompt served from the prompt cache (a shared prefix seen within ttl_s)."""
        cache = self.cache
        if cache is None or prefix < 0 or prefix_tokens < cache.min_tokens:
            return 0
        seen = self.cache_seen.get(prefix)
        self.cache_seen[prefix] = now
        if seen is None or now - seen > cache.ttl_s:
            return 0
        return min(prefix_tokens // cache.block_tokens * cache.block_tokens, prompt)

    def refuse(self, now: float, prompt: int, cached: int, output_cap: int):
        """None when the request is admitted (its charges made), else (reason, throttled, retry_after)."""
        if self.down:
            return OUTAGE, False, None
        charges = (1, prompt + output_cap, prompt - cached, output_cap)
        worst = None
        for bucket, index in self.buckets:
            if not bucket.fits(charges[index], now):
                wait = bucket.wait_for(charges[index], now)
                worst = wait if worst is None else max(worst, wait)
        if worst is not None:
            return QUOTA, True, (min(worst, 60.0) if self.kind in _SENDS_RETRY_AFTER else None)
        estimate = prompt - cached + output_cap
        provisioned = self.provisioned
        if provisioned is not None and provisioned.level(now) > provisioned.capacity:
            return PROVISIONED, True, provisioned.overflow_wait(now) if self.kind in _SENDS_RETRY_AFTER else None
        if self.slots and (self.in_use >= self.slots or self.waiting) and len(self.waiting) >= self.queue:
            if self.kind in _OVERLOAD_IS_429:
                return OVERLOADED, True, _OVERLOAD_IS_429[self.kind]
            return OVERLOADED, False, None
        for bucket, index in self.buckets:
            bucket.charge(charges[index], now)
        if provisioned is not None:
            provisioned.charge(estimate, now)
        return None

    def has_slot(self) -> bool:
        return not self.slots or (self.in_use < self.slots and not self.waiting)

    def service(self, output: int, u1: float, u2: float) -> tuple[float, float]:
        """(ttft, whole time) of a request whose slot was just taken; u1, u2 uniform in [0, 1)."""
        self.in_use += 1
        ttft, interval = self.ttft, self.interval
        if self.exponential:
            from math import log

            scale = -log(1.0 - u1)
            ttft *= scale
            interval *= scale
        elif self.jitter:
            ttft *= 1.0 + self.jitter * (2 * u1 - 1)
            interval /= 1.0 + self.jitter * (2 * u2 - 1)  # the emulator varies the rate
        if self.slots and (self.slow_ttft or self.slow_tokens):
            load = self.in_use / self.slots
            ttft *= 1.0 + self.slow_ttft * load
            interval *= 1.0 + self.slow_tokens * load
        return ttft, ttft + output * interval

    def correct_provisioned(self, estimate: int, actual: int, now: float) -> None:
        if self.provisioned is not None:
            self.provisioned.charge(actual - estimate, now)
