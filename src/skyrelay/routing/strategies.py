"""Ways to order a model group's deployments for one request. Pure: the RoutingView and random source are arguments.

A deployment here is anything with `name` and `weight`. A weight of 0 (or less) marks a standby: it is never
preferred over a weighted deployment and is tried last, in configuration order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

_INF = float("inf")


def weighted_order(deployments: Sequence, rng: Random) -> list:
    """Weighted random sampling without replacement: the first pick is proportional to weight, then the next
    among the rest, and so on. O(n^2), which beats sorting random keys for the handful a group holds."""
    if len(deployments) < 2:
        return list(deployments)
    rest = [d for d in deployments if d.weight > 0]
    standby = [d for d in deployments if not d.weight > 0] if len(rest) < len(deployments) else []
    order = []
    total = sum(d.weight for d in rest)
    random = rng.random
    while len(rest) > 1:
        point = random() * total
        for i, d in enumerate(rest):
            point -= d.weight
            if point < 0:
                break
        # (float rounding may leave point >= 0 after the loop: then the last one is picked, which is fair enough)
        total -= d.weight
        order.append(rest.pop(i))
    order += rest
    order += standby
    return order


def least_outstanding_order(deployments: Sequence, view, rng: Random) -> list:
    """Ascending in-flight requests per unit of weight. Ties (an idle group, typically) are broken by weighted
    random order, so at low load traffic still follows the weights instead of a coin toss."""
    if len(deployments) < 2:
        return list(deployments)
    load = view.in_flight
    keyed = sorted(
        (load(d.name) / d.weight if d.weight > 0 else _INF, i, d) for i, d in enumerate(deployments)
    )
    order = []
    start, n = 0, len(keyed)
    while start < n:
        end = start + 1
        while end < n and keyed[end][0] == keyed[start][0]:
            end += 1
        if end - start == 1:
            order.append(keyed[start][2])
        else:
            order += weighted_order([k[2] for k in keyed[start:end]], rng)
        start = end
    return order


def _weighted(deployments: Sequence, view, rng: Random) -> list:
    return weighted_order(deployments, rng)


# Every strategy, under its configuration name, with one signature: (deployments, view, rng) -> list.
Strategy = Callable[[Sequence, object, Random], list]
STRATEGIES: dict[str, Strategy] = {
    "weighted": _weighted,
    "least_outstanding": least_outstanding_order,
}
