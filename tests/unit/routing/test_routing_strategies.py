"""Ordering strategies, driven by seeded random sources."""

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from skyrelay.config.model import Price
from skyrelay.routing import RoutingView
from skyrelay.routing.strategies import STRATEGIES, least_outstanding_order, weighted_order


@dataclass(frozen=True, slots=True)
class Dep:  # stands in for skyrelay.config.Deployment
    name: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    price: Price = Price()


def deps(**weights):
    return tuple(Dep(name, float(w)) for name, w in weights.items())


def names(order):
    return "".join(d.name for d in order)


def permutation_odds(group):
    """Exact probability of each order under sequential weighted sampling without replacement."""
    odds = {}
    for perm in itertools.permutations(group):
        p, left = 1.0, sum(d.weight for d in group)
        for d in perm:
            p *= d.weight / left
            left -= d.weight
        odds[names(perm)] = p
    return odds


@pytest.mark.parametrize(
    "group",
    [deps(a=1, b=1), deps(a=1, b=2, c=7), deps(a=5, b=3, c=1, d=1)],
    ids=["even pair", "1-2-7", "5-3-1-1"],
)
def test_weighted_order_follows_the_weights_down_the_whole_order(group):
    rng, n = random.Random(42), 10_000
    seen = Counter(names(weighted_order(group, rng)) for _ in range(n))
    for order, p in permutation_odds(group).items():
        tolerance = 4 * math.sqrt(p * (1 - p) / n) + 1e-9  # four standard deviations
        assert abs(seen[order] / n - p) <= tolerance, (order, seen[order] / n, p)


@pytest.mark.parametrize(
    "group, expected",
    [
        ((), ""),
        (deps(a=3), "a"),
        (deps(a=0), "a"),
        (deps(a=0, b=0, c=0), "abc"),  # all standby: configuration order
    ],
)
def test_weighted_order_trivial_groups(group, expected):
    assert names(weighted_order(group, random.Random(0))) == expected


def test_zero_weight_is_a_standby_tried_last_in_config_order():
    group = deps(s1=0, a=1, s2=0, b=1)
    rng = random.Random(7)
    orders = {names(weighted_order(group, rng)) for _ in range(200)}
    assert orders == {"abs1s2", "bas1s2"}


def test_weighted_order_is_deterministic_for_a_seed_and_leaves_input_alone():
    group = deps(a=1, b=2, c=3)
    first = [names(weighted_order(group, random.Random(5))) for _ in range(3)]
    assert len(set(first)) == 1
    assert names(group) == "abc"


@pytest.mark.parametrize(
    "group, outstanding, expected",
    [
        (deps(a=1, b=1, c=1), {"a": 5, "b": 1, "c": 3}, "bca"),
        (deps(a=1, b=1, c=1), {"a": 2}, None),  # b, c idle: tie, so only "a is last" is fixed
        (deps(a=1, b=4), {"a": 2, "b": 4}, "ba"),  # 4/4 = 1 < 2/1 = 2: per unit of weight
        (deps(a=1, b=4), {"a": 1, "b": 8}, "ab"),  # 1 < 8/4 = 2
        (deps(a=0, b=1), {}, "ba"),  # standby after everything else even when idle
        (deps(a=0, b=1), {"b": 1000}, "ba"),
        (deps(a=1), {"a": 9}, "a"),
    ],
)
def test_least_outstanding_order(group, outstanding, expected):
    for seed in range(20):
        order = names(least_outstanding_order(group, RoutingView(outstanding=outstanding), random.Random(seed)))
        if expected is None:
            assert order[-1] == "a" and sorted(order) == ["a", "b", "c"]
        else:
            assert order == expected


def test_least_outstanding_ties_are_broken_randomly_by_weight():
    group, rng, n = deps(a=1, b=3, c=1), random.Random(3), 10_000
    first = Counter(least_outstanding_order(group, RoutingView(outstanding={"c": 1}), rng)[0].name for _ in range(n))
    assert first.keys() == {"a", "b"}  # c is busiest: never first
    assert abs(first["b"] / n - 0.75) < 0.02
    ties = Counter(names(least_outstanding_order(deps(a=1, b=1), RoutingView(), rng)) for _ in range(n))
    assert abs(ties["ab"] / n - 0.5) < 0.02


def test_registry_has_one_signature():
    group, rng = deps(a=1, b=1), random.Random(1)
    assert set(STRATEGIES) == {"weighted", "least_outstanding", "fastest", "cheapest", "cheapest_within", "affinity"}
    for strategy in STRATEGIES.values():
        assert sorted(names(strategy(group, RoutingView(outstanding={"a": 1}), rng))) == ["a", "b"]
    assert names(STRATEGIES["least_outstanding"](group, RoutingView(outstanding={"a": 1}), rng)) == "ba"
