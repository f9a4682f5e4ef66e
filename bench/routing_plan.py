"""Micro-benchmark of routing.plan(): microseconds per plan on the hot path. Not a test.

Run: .venv/bin/python bench/routing_plan.py
The budget is < 5 us per plan for a group of 3 deployments (see src/skyrelay/routing/). The latency- and
cost-aware strategies run with every deployment measured (a latency book with samples) and priced; affinity's plan
is timed with the request's prefix key already on its context (as every plan after a request's first), and the
key's hashing on its own. The last lines time what a request with quotas pays in all: plan, reserve the first
candidate's estimate, settle it with its usage.
"""

from __future__ import annotations

import random
import timeit
from dataclasses import dataclass

from skyrelay.canonical import ChatRequest
from skyrelay.config.model import LatencyObjective, Price
from skyrelay.routing import BreakerPolicy, HealthBook, QuotaBook, RoutingView, plan
from skyrelay.routing.affinity import prefix_hash
from skyrelay.routing.latency import LatencyBook


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
    price: Price = Price()


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
    latency_objective: LatencyObjective | None = LatencyObjective(ttft_ms=800)


def three(prefix: str) -> tuple:
    return tuple(Dep(f"{prefix}-{i}", weight) for i, weight in enumerate((1.0, 2.0, 3.0)))


def many(count: int, **limits) -> tuple:
    return tuple(Dep(f"d-{i}", 1.0 + i % 3, price=Price(1.0 + i % 4, 2.0 + i % 5), **limits) for i in range(count))


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
        *[(f"{strategy}, {n} deployments", g, {"chat": g}, healthy, {})
          for strategy in ("fastest", "cheapest", "cheapest_within", "affinity")
          for n in (3, 10, 50) for g in [Group("chat", many(n), strategy=strategy)]],
    ]


def measured() -> LatencyBook:
    """Every deployment the scenarios name, with TTFT and time-per-token samples of its own."""
    book = LatencyBook()
    for i in range(50):
        for name in (f"d-{i}", f"chat-{i}", f"small-{i}"):
            for t in range(20):
                book.observe_first_token(name, t * 0.05, 0.1 + 0.01 * (i % 7) + 0.001 * t)
                book.observe_tokens(name, t * 0.05, 0.5 + 0.01 * (i % 5), 100)
    book.observe_output(200)
    return book


def main() -> None:
    rng, now, number = random.Random(1), 1.0, 200_000
    request, latencies = Req(), measured()
    for title, group, groups, health, outstanding in scenarios():
        view = RoutingView(health, outstanding, latencies=latencies)
        runs = number if len(group.deployments) < 50 else number // 10
        best = min(
            timeit.repeat(lambda: plan(group, groups, view, now, rng, request), number=runs, repeat=5)
        )
        print(f"{best / runs * 1e6:6.2f} us per plan  {title}")
    best = min(timeit.repeat(lambda: prefix_hash(request.prompt), number=number, repeat=5))
    print(f"{best / number * 1e6:6.2f} us per prefix key  a 2,000-character system prompt and a question")
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
    prompt = ChatRequest(model="chat", messages=[{"role": "system", "content": "Be helpful. " * 166},
                                                 {"role": "user", "content": "What is the capital of France?"}])
    prefix_key = None
    residency = None
    key_residency = None


if __name__ == "__main__":
    main()
