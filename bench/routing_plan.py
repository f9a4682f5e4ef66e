"""Micro-benchmark of routing.plan(): microseconds per plan on the hot path. Not a test.

Run: .venv/bin/python bench/routing_plan.py
The budget is < 5 us per plan for a group of 3 deployments (see src/skyrelay/routing/). The last lines time what a
request with quotas pays in all: plan, reserve the first candidate's estimate, settle it with its usage.
"""

from __future__ import annotations

import random
import timeit
from dataclasses import dataclass

from skyrelay.routing import BreakerPolicy, HealthBook, QuotaBook, RoutingView, plan


@dataclass(frozen=True, slots=True)
class Dep:  # the attributes routing reads from skyrelay.config.Deployment
    name: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    tier: int = 0
    vendor: str = "v"
    region: str | None = None
    geo: str | None = None
    context_window: int | None = None


@dataclass(frozen=True, slots=True)
class Group:  # the attributes routing reads from skyrelay.config.ModelGroup
    name: str
    deployments: tuple
    fallbacks: tuple = ()
    strategy: str = "weighted"
    max_attempts: int = 3
    tiers: tuple = ()
    context_fallbacks: tuple = ()
    residency: frozenset | None = None
    concentration: object = None


def three(prefix: str) -> tuple:
    return tuple(Dep(f"{prefix}-{i}", weight) for i, weight in enumerate((1.0, 2.0, 3.0)))


def many(count: int, **limits) -> tuple:
    return tuple(Dep(f"d-{i}", 1.0 + i % 3, **limits) for i in range(count))


def tiered(count: int, **limits) -> Group:
    """Half in tier 0, half in tier 1."""
    deployments = tuple(Dep(f"d-{i}", 1.0, tier=i % 2, **limits) for i in range(count))
    return Group("chat", deployments, tiers=tuple(tuple(d for d in deployments if d.tier == t) for t in (0, 1)))


def scenarios():
    healthy = HealthBook()
    one_open = HealthBook(BreakerPolicy(failure_threshold=1))
    one_open.on_failure("chat-1", 0.0)
    busy = {"chat-0": 3, "chat-1": 1, "chat-2": 7}
    chat = Group("chat", three("chat"))
    least = Group("chat", three("chat"), strategy="least_outstanding")
    fallback_groups = {"chat": Group("chat", three("chat"), ("small",)), "small": Group("small", three("small"))}
    return [
        ("weighted, 3 deployments", chat, {"chat": chat}, healthy, {}),
        ("least_outstanding, 3 deployments", least, {"chat": least}, healthy, busy),
        ("weighted, 3 deployments, 1 breaker open", chat, {"chat": chat}, one_open, {}),
        ("weighted, 3 + 3 in a fallback group", fallback_groups["chat"], fallback_groups, healthy, {}),
        *[(f"weighted, {n} deployments", g, {"chat": g}, healthy, {})
          for n in (10, 50) for g in [Group("chat", many(n))]],
        *[(f"weighted, {n} deployments with rpm/tpm/max_concurrency, 2 tiers", g, {"chat": g}, healthy, {})
          for n in (3, 10, 50) for g in [tiered(n, rpm=10**9, tpm=10**12, max_concurrency=10**6)]],
    ]


def main() -> None:
    rng, now, number = random.Random(1), 1.0, 200_000
    for title, group, groups, health, outstanding in scenarios():
        view = RoutingView(health, outstanding)
        best = min(
            timeit.repeat(lambda: plan(group, groups, view, now, rng), number=number, repeat=5)
        )
        print(f"{best / number * 1e6:6.2f} us per plan  {title}")
    request = Req()
    for n in (3, 10, 50):
        group = tiered(n, rpm=10**9, tpm=10**12)
        view, now_box = RoutingView(HealthBook(), {}, QuotaBook()), [0.0]
        quotas = view.quotas
        usage_in, usage_out = 120, 40

        def one_request():
            now_box[0] += 0.001  # a thousand requests a second: the minute's log holds 60,000 entries
            now = now_box[0]
            chosen = plan(group, {"chat": group}, view, now, rng, request).candidates[0]
            tokens = quotas.estimate(chosen, request.body_bytes, request.max_output)
            entry = quotas.reserve(chosen, now, tokens)
            quotas.settle(chosen, entry, sent=True, used_tokens=usage_in + usage_out, input_tokens=usage_in,
                          body_bytes=request.body_bytes)
        best = min(timeit.repeat(one_request, number=number, repeat=5))
        print(f"{best / number * 1e6:6.2f} us per plan+reserve+settle  {n} deployments with rpm/tpm, 2 tiers")


class Req:  # the attributes routing reads from skyrelay.context.RequestContext
    body_bytes = 480
    max_output = None


if __name__ == "__main__":
    main()
