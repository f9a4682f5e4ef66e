"""Micro-benchmark of routing.plan(): microseconds per plan on the hot path. Not a test.

Run: .venv/bin/python bench/routing_plan.py
The budget is < 5 us per plan for a group of 3 deployments (see src/skyrelay/routing/).
"""

from __future__ import annotations

import random
import timeit
from dataclasses import dataclass

from skyrelay.routing import BreakerPolicy, HealthBook, RoutingView, plan


@dataclass(frozen=True, slots=True)
class Dep:  # the attributes routing reads from skyrelay.config.Deployment
    name: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    tier: int = 0


@dataclass(frozen=True, slots=True)
class Group:  # the attributes routing reads from skyrelay.config.ModelGroup
    name: str
    deployments: tuple
    fallbacks: tuple = ()
    strategy: str = "weighted"
    max_attempts: int = 3
    tiers: tuple = ()


def three(prefix: str) -> tuple:
    return tuple(Dep(f"{prefix}-{i}", weight) for i, weight in enumerate((1.0, 2.0, 3.0)))


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
    ]


def main() -> None:
    rng, now, number = random.Random(1), 1.0, 200_000
    for title, group, groups, health, outstanding in scenarios():
        view = RoutingView(health, outstanding)
        best = min(
            timeit.repeat(lambda: plan(group, groups, view, now, rng), number=number, repeat=5)
        )
        print(f"{best / number * 1e6:6.2f} us per plan  {title}")


if __name__ == "__main__":
    main()
