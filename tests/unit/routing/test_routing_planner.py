"""plan(): candidate order across fallbacks, health filtering, skipped reasons."""

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from skyrelay.routing import BreakerPolicy, HealthBook, Plan, RoutingView, plan


@dataclass(frozen=True, slots=True)
class Dep:  # stands in for skyrelay.config.Deployment
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
class Group:  # stands in for skyrelay.config.ModelGroup
    name: str
    deployments: tuple
    fallbacks: tuple = ()
    strategy: str = "weighted"
    max_attempts: int = 3
    tiers: tuple = ()
    context_fallbacks: tuple = ()
    residency: frozenset | None = None
    concentration: object = None


def groups(spec: str) -> dict:
    """'A:a1,a2>B,C  B:b1>A' -> group A with deployments a1, a2 and fallbacks B, C; group B ... (weights 1)."""
    out = {}
    for item in spec.split():
        head, _, fallbacks = item.partition(">")
        name, _, members = head.partition(":")
        deployments = tuple(Dep(m) for m in members.split(",") if m)
        out[name] = Group(name, deployments, tuple(f for f in fallbacks.split(",") if f))
    return out


def names(items):
    return [d.name for d in items]


def plan_for(spec, asking="A", health=None, outstanding=None, now=0.0, seed=0):
    table = groups(spec)
    return plan(table[asking], table, RoutingView(health, outstanding), now, random.Random(seed))


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("A:a", ["a"]),
        ("A:a>B B:b", ["a", "b"]),
        ("A:a>B,C B:b C:c", ["a", "b", "c"]),
        ("A:a>C,B B:b C:c", ["a", "c", "b"]),  # the asking group's fallback order, not the file's
        ("A:a>B,C B:b>D C:c D:d", ["a", "b", "c", "d"]),  # breadth first: A's own list before B's
        ("A:a>B B:b>C C:c>D D:d", ["a", "b", "c", "d"]),  # recursively
        ("A:a>B B:b>A", ["a", "b"]),  # a cycle
        ("A:a>A,B B:b>B", ["a", "b"]),  # self references
        ("A:a>B,B B:b", ["a", "b"]),  # a fallback listed twice
        ("A:a>B,C B:b>C C:c>B", ["a", "b", "c"]),
        ("A:a>B B:a,b", ["a", "b"]),  # a deployment shared by two groups is tried once
        ("A:a>NOPE,B B:b", ["a", "b"]),  # unknown names are config validation's business, not a crash
        ("A:>B B:b", ["b"]),  # an empty group just falls through
    ],
)
def test_fallback_order(spec, expected):
    assert names(plan_for(spec).candidates) == expected


def test_fallback_groups_keep_their_members_together_and_the_asking_groups_budget():
    table = groups("A:a1,a2,a3>B B:b1,b2")
    table["B"] = Group("B", table["B"].deployments, max_attempts=9)
    for seed in range(20):
        result = plan(table["A"], table, RoutingView(), 0.0, random.Random(seed))
        assert sorted(names(result.candidates[:3])) == ["a1", "a2", "a3"]
        assert sorted(names(result.candidates[3:])) == ["b1", "b2"]
        assert result.max_attempts == 3


def test_each_group_uses_its_own_strategy():
    deps = tuple(Dep(n) for n in ("b1", "b2", "b3"))
    table = {"A": Group("A", (Dep("a"),), ("B",)), "B": Group("B", deps, strategy="least_outstanding")}
    result = plan(table["A"], table, RoutingView(outstanding={"b1": 4, "b2": 0, "b3": 2}), 0.0, random.Random(1))
    assert names(result.candidates) == ["a", "b2", "b3", "b1"]


def test_weighted_distribution_over_10k_plans():
    table = {"A": Group("A", (Dep("a", 1.0), Dep("b", 3.0), Dep("c", 6.0)))}
    rng, health, n = random.Random(2024), HealthBook(), 10_000
    first = Counter(plan(table["A"], table, RoutingView(health), 0.0, rng).candidates[0].name for _ in range(n))
    for name, share in {"a": 0.1, "b": 0.3, "c": 0.6}.items():
        assert abs(first[name] / n - share) < 0.02, (name, first)


def unhealthy_book():
    """a: breaker open (10 s left at t=0); b: upstream Retry-After 4 s; c: half-open probe in flight; d: healthy."""
    book = HealthBook(BreakerPolicy(failure_threshold=1, cooldown=10.0))
    book.on_failure("a", 0.0)
    book.on_failure("b", 0.0, retry_after=4.0)
    book.on_failure("c", -20.0)  # opened at -20, half-open since -10
    book.on_attempt("c", -8.0)  # probe stale at +2
    return book


def test_unavailable_deployments_are_skipped_with_reason_and_wait():
    result = plan_for("A:a,b>B B:c,d", health=unhealthy_book())
    assert names(result.candidates) == ["d"]
    assert [(d.name, why, wait) for d, why, wait in result.skipped] == [
        ("a", "circuit open", 10.0),
        ("b", "cooling down", 4.0),
        ("c", "probe in flight", 2.0),
    ]
    assert result.soonest_available() == 2.0


def test_nothing_available_leaves_candidates_empty_and_says_when_to_come_back():
    result = plan_for("A:a>B B:b", health=unhealthy_book(), now=1.0)
    assert result.candidates == []
    assert result.soonest_available() == 3.0
    assert result.max_attempts == 3


def test_deployments_come_back_when_their_time_is_up():
    result = plan_for("A:a,b>B B:c,d", health=unhealthy_book(), now=10.0)
    assert sorted(names(result.candidates)) == ["a", "b", "c", "d"]
    assert result.skipped == [] and result.soonest_available() is None


def test_planning_changes_no_health_state():
    book = unhealthy_book()
    before = book.snapshot()
    for now in (0.0, 3.0, 12.0):
        plan_for("A:a,b>B B:c,d", health=book, now=now)
    assert book.snapshot() == before


def test_unknown_strategy_names_the_known_ones():
    table = {"A": Group("A", (Dep("a"), Dep("b")), strategy="quickest")}
    with pytest.raises(ValueError, match="weighted"):
        plan(table["A"], table, RoutingView(), 0.0, random.Random(0))


def test_plan_is_a_plain_value():
    assert Plan([], [], 1).soonest_available() is None
