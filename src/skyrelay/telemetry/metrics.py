"""Plain counters and histograms, updated from each closed request context and rendered only when scraped.

The request path pays a few dict increments (about a microsecond, see docs/observability.md), not a metrics
library's locks and label lookups per call: Prometheus text is built from these dicts at scrape time
(exposition.py). Every label is bounded by the configuration (model groups, deployments, vendors), a status
class or an error's class name: never a key, a user or a request id.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Seconds. LLM answers span milliseconds (embeddings, cached) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
CLIENT_CLOSED = 499  # the client went away before its answer (nginx's code; no HTTP status says it)


class Histogram:
    """Counts per bucket (not yet cumulative: exposition sums them), plus the sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le` buckets: a value equal to a bound is in it
        self.sum += value


class Metrics:
    """What happened to every request that reached a model group, and to those answered before one."""

    def __init__(self, prices: dict[str, tuple[float, float, float]]):
        self.prices = prices  # deployment -> (input, cached input, output) USD per token, only where priced
        self.requests: dict[tuple[str, str], int] = {}  # (group, status class)
        self.attempts: dict[tuple[str, str, str, str], int] = {}  # (group, deployment, vendor, result)
        self.attempt_errors: dict[tuple[str, str], int] = {}  # (deployment, error class)
        self.failovers: dict[tuple[str, str], int] = {}  # (group, deployment that served after a failure)
        self.latency: dict[str, Histogram] = {}  # group -> seconds from dispatch to the request's end
        self.ttft: dict[str, Histogram] = {}  # group -> a stream's seconds to its first output
        self.attempt_latency: dict[str, Histogram] = {}  # deployment -> seconds of its successful attempts
        self.tokens: dict[tuple[str, str, str], int] = {}  # (group, deployment, input|output|cached)
        self.cost: dict[tuple[str, str], float] = {}  # (group, deployment) -> USD
        self.unrouted: dict[tuple[str, str], int] = {}  # (route, status class): answered before any model group

    def observe(self, ctx: Any, status: int, end: float) -> None:
        group = ctx.group
        key = (group, STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx")
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        hist = self.latency.get(group)
        if hist is None:
            hist = self.latency[group] = Histogram(LATENCY_BUCKETS)
        hist.observe(end - ctx.arrival)
        if ctx.first_output is not None:
            hist = self.ttft.get(group)
            if hist is None:
                hist = self.ttft[group] = Histogram(TTFT_BUCKETS)
            hist.observe(ctx.first_output - ctx.arrival)
        failed = False
        attempts = self.attempts
        for attempt in ctx.attempts:
            name = attempt.deployment
            result = attempt.status or "abandoned"
            key = (group, name, attempt.vendor, result)
            attempts[key] = attempts.get(key, 0) + 1
            if result == "ok":
                if failed:
                    key = (group, name)
                    self.failovers[key] = self.failovers.get(key, 0) + 1
                if attempt.end is not None:
                    self._attempt_latency(name, attempt.end - attempt.start)
                if attempt.usage is not None:
                    self._usage(group, name, attempt.usage)
            elif attempt.error_kind is not None:
                failed = failed or result == "failed"
                key = (name, attempt.error_kind)
                self.attempt_errors[key] = self.attempt_errors.get(key, 0) + 1

    def observe_unrouted(self, route: str, status: int) -> None:
        key = (route, STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx")
        self.unrouted[key] = self.unrouted.get(key, 0) + 1

    def _attempt_latency(self, name: str, seconds: float) -> None:
        hist = self.attempt_latency.get(name)
        if hist is None:
            hist = self.attempt_latency[name] = Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def _usage(self, group: str, name: str, usage: Any) -> None:
        tokens = self.tokens
        for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                            ("cached", usage.cached_tokens)):
            if count:
                key = (group, name, kind)
                tokens[key] = tokens.get(key, 0) + count
        price = self.prices.get(name)
        if price is not None:
            key = (group, name)
            self.cost[key] = self.cost.get(key, 0.0) + cost_of(usage, price)


def cost_of(usage: Any, price: tuple[float, float, float]) -> float:
    """USD for one answer's usage; cached input tokens are part of input_tokens, at their own price."""
    per_input, per_cached, per_output = price
    cached = usage.cached_tokens
    return (usage.input_tokens - cached) * per_input + cached * per_cached + usage.output_tokens * per_output


def prices_of(deployments: list[Any]) -> dict[str, tuple[float, float, float]]:
    """Per-token prices of the deployments that have one configured (USD per million tokens in the YAML)."""
    prices = {}
    for d in deployments:
        p = d.price
        if p.input_per_mtok or p.output_per_mtok or p.cached_input_per_mtok:
            cached = p.cached_input_per_mtok if p.cached_input_per_mtok is not None else p.input_per_mtok
            prices[d.name] = (p.input_per_mtok / 1e6, cached / 1e6, p.output_per_mtok / 1e6)
    return prices
