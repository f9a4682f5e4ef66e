"""The one thing the planner and the strategies read: what routing may know about each deployment right now.

Availability (the health book), requests in flight, quota headroom, commitment tier and latency, behind one object so that
a new signal is one new method here, not a change to every strategy's signature. In one process it is backed by
the dispatcher's own state; a simulator or a shared store can back it with theirs. Pure: `now` is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping

from .health import HealthBook
from .latency import LatencyBook
from .policies import ShareBook
from .quotas import CONCURRENCY, DEFAULT_OUTPUT_TOKENS, QuotaBook


class RoutingView:
    __slots__ = ("health", "outstanding", "quotas", "latencies", "shares")

    def __init__(self, health: HealthBook | None = None, outstanding: Mapping[str, int] | None = None,
                 quotas: QuotaBook | None = None, latencies: LatencyBook | None = None,
                 shares: ShareBook | None = None):
        self.health = health if health is not None else HealthBook()
        self.outstanding = outstanding if outstanding is not None else {}
        self.quotas = quotas if quotas is not None else QuotaBook()
        self.latencies = latencies if latencies is not None else LatencyBook()
        self.shares = shares if shares is not None else ShareBook()

    def in_flight(self, name: str) -> int:
        return self.outstanding.get(name, 0)

    def estimate(self, deployment, body_bytes: int, max_output: int | None) -> int:
        return self.quotas.estimate(deployment, body_bytes, max_output)

    def tokens_for(self, deployment, request) -> int:
        """The request's token estimate on this deployment (0 without a request or a tpm to check it against)."""
        if request is None or deployment.tpm is None:
            return 0
        return self.quotas.estimate(deployment, request.body_bytes, request.max_output)

    def unavailable_reason(self, deployment, now: float, tokens: int = 0) -> str | None:
        """Why the deployment cannot take a request of `tokens` now: a health reason (circuit open, cooling down,
        probe in flight), CONCURRENCY or QUOTA; None when it can."""
        name = deployment.name
        reason = self.health.unavailable_reason(name, now)
        if reason is not None:
            return reason
        limit = deployment.max_concurrency
        if limit is not None and self.outstanding.get(name, 0) >= limit:
            return CONCURRENCY
        return self.quotas.refusal(deployment, now, tokens)

    def seconds_until_available(self, deployment, reason: str, now: float, tokens: int = 0) -> float:
        """A Retry-After hint for a deployment skipped for `reason` (0 for concurrency: it frees on no clock)."""
        if reason == CONCURRENCY:
            return 0.0
        health = self.health.seconds_until_available(deployment.name, now)
        return max(health, self.quotas.seconds_until_headroom(deployment, now, tokens))

    def prompt_tokens(self, deployment, request) -> int:
        """The request's estimated prompt tokens on this deployment, checked against its context_window."""
        return self.quotas.input_tokens(deployment, request.body_bytes)

    def vendors_over_cap(self, group: str, policy, now: float) -> set[str]:
        """The vendors over the group's concentration cap in its window right now."""
        return self.shares.over_cap(group, policy, now)

    def seconds_until_share(self, group: str, vendor: str, now: float, policy) -> float:
        return self.shares.seconds_until_share(group, vendor, now, policy)

    @staticmethod
    def tier(deployment) -> int:
        return deployment.tier

    def ttft(self, name: str, now: float) -> float:
        """Expected seconds to the first token (peak-sensitive EWMA; 0 when never measured)."""
        return self.latencies.ttft(name, now)

    def time_per_token(self, name: str, now: float) -> float:
        """Expected seconds per output token after the first (0 when never measured)."""
        return self.latencies.time_per_token(name, now)

    def ttft_percentile(self, name: str, now: float, percentile: float) -> float | None:
        """The deployment's recent TTFT at `percentile` (seconds), None without recent samples."""
        return self.latencies.ttft_percentile(name, now, percentile)

    def input_tokens(self, deployment, request) -> int:
        """The request's input tokens as this deployment counts them (0 without a request)."""
        return 0 if request is None else self.quotas.input_tokens(deployment, request.body_bytes)

    def expected_output(self, request) -> float:
        """Output tokens the request is expected to produce: the recent mean of served requests, at most its cap."""
        mean = self.latencies.mean_output or DEFAULT_OUTPUT_TOKENS
        cap = request.max_output if request is not None else None
        return mean if cap is None or cap > mean else cap
