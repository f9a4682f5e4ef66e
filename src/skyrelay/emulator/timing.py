"""How long the fake model takes: time to first token, then a steady token rate, with optional jitter.

Delays are paced against deadlines (first byte + i / rate) rather than slept one by one, so thousands of
short sleeps do not drift, and a rate too high to sleep between tokens simply sends them back to back.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

_MIN_SLEEP = 0.001  # below this, sleeping costs more than it simulates


@dataclass(slots=True)
class Timing:
    ttft_ms: float = 20.0
    tokens_per_second: float = 500.0
    jitter: float = 0.0  # fraction: 0.2 -> each request's ttft and rate vary by up to +-20%


class Pacer:
    """The clock of one request."""

    __slots__ = ("ttft", "token_interval", "_start")

    def __init__(self, timing: Timing, rng: random.Random, extra_ms: float = 0.0):
        spread = max(min(timing.jitter, 0.95), 0.0)
        ttft_factor = 1.0 + rng.uniform(-spread, spread) if spread else 1.0
        rate_factor = 1.0 + rng.uniform(-spread, spread) if spread else 1.0
        self.ttft = max(timing.ttft_ms * ttft_factor + extra_ms, 0.0) / 1000.0
        rate = timing.tokens_per_second * rate_factor
        self.token_interval = 1.0 / rate if rate > 0 else 0.0
        self._start = 0.0

    async def first_token(self) -> None:
        """Wait out the time to first token; later tokens are paced from here."""
        loop = asyncio.get_running_loop()
        if self.ttft >= _MIN_SLEEP:
            await asyncio.sleep(self.ttft)
        self._start = loop.time()

    async def token(self, i: int) -> None:
        """Wait until token number `i` (1-based after the first byte) is due."""
        if not self.token_interval:
            return
        delay = self._start + i * self.token_interval - asyncio.get_running_loop().time()
        if delay >= _MIN_SLEEP:
            await asyncio.sleep(delay)

    async def whole(self, tokens: int) -> None:
        """A non-streamed reply: first token time plus the time to produce all the others."""
        total = self.ttft + tokens * self.token_interval
        if total >= _MIN_SLEEP:
            await asyncio.sleep(total)
