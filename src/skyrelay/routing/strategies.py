"""Ways to order a model group's deployments for one request. Pure: the RoutingView and random source are arguments.

A deployment here is anything with `name` and `weight` (and `price`, for the cost-aware ones). A weight of 0 (or less) marks a standby: it is never
preferred over a weighted deployment and is tried last, in configuration order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

from .affinity import affinity_order as ring_order
from .affinity import prefix_key

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


def least_outstanding_order(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None,
                            group=None) -> list:
    """Ascending in-flight requests per unit of weight. Ties (an idle group, typically) are broken by weighted
    random order, so at low load traffic still follows the weights instead of a coin toss."""
    if len(deployments) < 2:
        return list(deployments)
    load = view.in_flight
    return _ascending([load(d.name) / d.weight if d.weight > 0 else _INF for d in deployments], deployments, rng)


def fastest_order(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None, group=None) -> list:
    """Ascending expected time to the whole answer: (TTFT + expected output x time per token) x (in flight + 1).
    The load factor (as Finagle's peak EWMA balancer) keeps the fastest from taking every concurrent request
    until it is no longer the fastest. A deployment never measured (or idle long enough) reads 0: it is tried."""
    if len(deployments) < 2:
        return list(deployments)
    return _ascending(_expected_seconds(deployments, view, now, request), deployments, rng)


def cheapest_order(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None, group=None) -> list:
    """Ascending price of this request: its estimated input tokens at the deployment's input price plus its
    expected output at the output price (the full input price: whether it will hit a cache is not known).
    Equal prices (no prices configured, say) are ordered by weighted random."""
    if len(deployments) < 2:
        return list(deployments)
    return _ascending(_prices(deployments, view, request), deployments, rng)


def cheapest_within_order(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None,
                          group=None) -> list:
    """The cheapest of those whose recent TTFT at the objective's percentile meets the objective (one without
    recent samples is taken to meet it, so it gets measured); then the others, fastest first."""
    objective = group.latency_objective if group is not None else None
    if len(deployments) < 2 or objective is None:
        return cheapest_order(deployments, view, rng, now, request, group)
    limit, percentile = objective.ttft_ms / 1000, objective.percentile
    observed = view.ttft_percentile
    meeting, missing = [], []
    for d in deployments:
        seconds = observed(d.name, now, percentile)
        (meeting if seconds is None or seconds <= limit else missing).append(d)
    order = cheapest_order(meeting, view, rng, now, request, group) if meeting else []
    if missing:
        order += fastest_order(missing, view, rng, now, request, group)
    return order


def affinity_order(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None, group=None) -> list:
    """Bounded-load consistent hashing of the request's prompt prefix (see routing/affinity.py); weighted random
    for a request without a prompt (embeddings)."""
    if len(deployments) < 2:
        return list(deployments)
    key = prefix_key(request)
    if key is None:
        return weighted_order(deployments, rng)
    return ring_order(deployments, key, view.in_flight)


def _expected_seconds(deployments: Sequence, view, now: float, request) -> list[float]:
    output = view.expected_output(request)
    ttft, per_token, load = view.ttft, view.time_per_token, view.in_flight
    return [(ttft(d.name, now) + output * per_token(d.name, now)) * (load(d.name) + 1) if d.weight > 0 else _INF
            for d in deployments]


def _prices(deployments: Sequence, view, request) -> list[float]:
    output = view.expected_output(request)
    return [view.input_tokens(d, request) * d.price.input_per_mtok + output * d.price.output_per_mtok
            if d.weight > 0 else _INF for d in deployments]


def _ascending(keys: list[float], deployments: Sequence, rng: Random) -> list:
    """The deployments by ascending key; runs of equal keys in weighted random order."""
    keyed = sorted(zip(keys, range(len(keys)), deployments))
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


def _weighted(deployments: Sequence, view, rng: Random, now: float = 0.0, request=None, group=None) -> list:
    return weighted_order(deployments, rng)


LATENCY_AWARE = ("fastest", "cheapest_within")  # the strategies that read the latency book: it is fed for them


# Every strategy, under its configuration name, with one signature:
# (deployments, view, rng, now, request, group) -> list. `request` is the RequestContext (or None), `group` the
# ModelGroup whose deployments these are (for its latency_objective).
Strategy = Callable[..., list]
STRATEGIES: dict[str, Strategy] = {
    "weighted": _weighted,
    "least_outstanding": least_outstanding_order,
    "fastest": fastest_order,
    "cheapest": cheapest_order,
    "cheapest_within": cheapest_within_order,
    "affinity": affinity_order,
}
