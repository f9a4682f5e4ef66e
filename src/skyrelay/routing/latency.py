"""What routing knows of each deployment's speed: time to first token (TTFT) and time per output token (TPOT).

Each is a peak-sensitive EWMA (Finagle's "peak EWMA"): a sample above the current value replaces it at once, so a
deployment that turns slow is seen slow by the very next plan; a sample below it is averaged in with a weight that
grows with the time since the last sample, `w = 1 - exp(-elapsed / TAU_S)` (at least 5%, so a burst of fast
samples after a peak still brings it down within a few dozen requests). Between samples the value decays
towards 0 with the same time constant, read without mutation as `value * exp(-(now - stamp) / TAU_S)`: a deployment
that routing stopped choosing because it was slow looks faster and faster until it is chosen again and measured,
and a deployment never measured reads 0, the best there is, so a new or recovered deployment is tried at once.

For `latency_objective` each deployment also keeps a histogram of TTFT in log-spaced buckets (ratio 2^(1/4):
64 buckets from 1 ms to ~65 s, a value read back is its bucket's upper bound, at most 19% high), over two fixed
windows of WINDOW_S: the current one and the one before it, so a percentile covers the last one to two windows and
forgets the rest. O(1) per sample; a percentile is computed once per sample that changed it (cached until the
next sample), so a plan reads it in O(1).

Pure: every method takes `now`; samples are seconds.
"""

from __future__ import annotations

import math

TAU_S = 10.0  # the EWMA's time constant: a deployment idle this long reads ~37% of its last value
WINDOW_S = 30.0  # the percentile's window: it covers the last 30 to 60 s
_BUCKETS = 64
_STEPS_PER_DOUBLING = 4
_SMALLEST_S = 0.001
_LOG_RATIO = math.log(2) / _STEPS_PER_DOUBLING
_exp, _log = math.exp, math.log
_OUTPUT_ALPHA = 0.1  # the group-wide mean output length: a plain EWMA over served requests


class PeakEwma:
    __slots__ = ("value", "stamp")

    def __init__(self) -> None:
        self.value = 0.0
        self.stamp = 0.0

    def read(self, now: float) -> float:
        if not self.value:
            return 0.0
        return self.value * _exp((self.stamp - now) / TAU_S) if now > self.stamp else self.value

    def observe(self, now: float, sample: float) -> None:
        decay = _exp((self.stamp - now) / TAU_S) if now > self.stamp else 1.0  # one exp per sample
        current = self.value * decay
        if sample > current:
            self.value = sample
        else:
            weight = 1.0 - decay
            self.value = current + (sample - current) * (weight if weight > 0.05 else 0.05)
        self.stamp = now


class WindowedHistogram:
    """TTFT counts in log-spaced buckets over the current and the previous window."""

    __slots__ = ("current", "previous", "window_start", "_cached")

    def __init__(self) -> None:
        self.current = [0] * _BUCKETS
        self.previous = [0] * _BUCKETS
        self.window_start = 0.0
        self._cached: dict[float, float | None] = {}

    def observe(self, now: float, sample: float) -> None:
        if now - self.window_start >= WINDOW_S:
            self._rotate(now)
        if sample <= _SMALLEST_S:
            index = 0
        else:
            index = int(_log(sample / _SMALLEST_S) / _LOG_RATIO) + 1
            if index >= _BUCKETS:
                index = _BUCKETS - 1
        self.current[index] += 1
        if self._cached:
            self._cached = {}

    def percentile(self, now: float, percentile: float) -> float | None:
        """The TTFT (seconds) that `percentile` percent of the window's samples did not exceed; None without any."""
        if now - self.window_start >= WINDOW_S:
            self._rotate(now)
        cached = self._cached.get(percentile, _MISSING)
        if cached is not _MISSING:
            return cached
        counts = [a + b for a, b in zip(self.current, self.previous)]
        total = sum(counts)
        value = None
        if total:
            rank = math.ceil(total * percentile / 100)
            seen = 0
            for index, count in enumerate(counts):
                seen += count
                if seen >= rank:
                    value = _upper_bound(index)
                    break
        self._cached[percentile] = value
        return value

    def _rotate(self, now: float) -> None:
        elapsed = now - self.window_start
        if elapsed < WINDOW_S:
            return
        self.previous = self.current if elapsed < 2 * WINDOW_S else [0] * _BUCKETS
        self.current = [0] * _BUCKETS
        self.window_start = now
        self._cached = {}


_MISSING = object()


def _upper_bound(index: int) -> float:
    return _SMALLEST_S * math.exp(index * _LOG_RATIO)


class DeploymentLatency:
    __slots__ = ("ttft", "tpot", "histogram")

    def __init__(self) -> None:
        self.ttft = PeakEwma()
        self.tpot = PeakEwma()
        self.histogram = WindowedHistogram()


class LatencyBook:
    """Every deployment's latency, by name; created on its first sample."""

    __slots__ = ("_by_name", "mean_output")

    def __init__(self) -> None:
        self._by_name: dict[str, DeploymentLatency] = {}
        self.mean_output = 0.0  # output tokens per served request, over every deployment (0: none seen yet)

    def _entry(self, name: str) -> DeploymentLatency:
        entry = self._by_name.get(name)
        if entry is None:
            entry = self._by_name[name] = DeploymentLatency()
        return entry

    def observe_first_token(self, name: str, now: float, ttft: float) -> None:
        entry = self._entry(name)
        entry.ttft.observe(now, ttft)
        entry.histogram.observe(now, ttft)

    def observe_tokens(self, name: str, now: float, seconds: float, output_tokens: int) -> None:
        """`seconds` spent producing `output_tokens` after the first one."""
        if output_tokens > 0:
            self._entry(name).tpot.observe(now, seconds / output_tokens)

    def observe_output(self, output_tokens: int) -> None:
        mean = self.mean_output
        self.mean_output = mean + (output_tokens - mean) * _OUTPUT_ALPHA if mean else float(output_tokens)

    def observe_whole(self, name: str, now: float, seconds: float, output_tokens: int) -> None:
        """A non-streamed answer: only its total time is seen. Its TTFT is that time less the output at the
        deployment's known time per token (the whole time while none is known)."""
        entry = self._by_name.get(name) or self._entry(name)
        tpot = entry.tpot
        if tpot.value and output_tokens:
            seconds -= output_tokens * tpot.read(now)
            if seconds < 0.0:
                seconds = 0.0
        entry.ttft.observe(now, seconds)
        entry.histogram.observe(now, seconds)

    def ttft(self, name: str, now: float) -> float:
        entry = self._by_name.get(name)
        return entry.ttft.read(now) if entry is not None else 0.0

    def time_per_token(self, name: str, now: float) -> float:
        entry = self._by_name.get(name)
        return entry.tpot.read(now) if entry is not None else 0.0

    def ttft_percentile(self, name: str, now: float, percentile: float) -> float | None:
        entry = self._by_name.get(name)
        return entry.histogram.percentile(now, percentile) if entry is not None else None

    def snapshot(self, now: float) -> dict[str, dict]:
        """For operators and tests: each deployment's TTFT, TPOT (seconds) and p95 TTFT now."""
        return {name: {"ttft": e.ttft.read(now), "tpot": e.tpot.read(now),
                       "ttft_p95": e.histogram.percentile(now, 95)} for name, e in self._by_name.items()}
