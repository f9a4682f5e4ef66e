"""Plain counters and histograms, updated from each closed request context and rendered only when scraped.

The request path pays a few dict increments (about a microsecond, see docs/observability.md), not a metrics
library's locks and label lookups per call: Prometheus text is built from these dicts at scrape time
(exposition.py). Every label is bounded by the configuration (model groups, deployments, vendors), a status
class or an error's class name: never a key, a user or a request id.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from ..ledger.record import money_of

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


class GroupStats:
    """One model group's requests: counted by status class, timed end to end and (streams) to first output."""

    __slots__ = ("by_class", "latency", "ttft", "hedged", "hedge_wins")

    def __init__(self):
        self.by_class = [0] * len(STATUS_CLASSES)
        self.hedged = 0  # requests that sent a hedge attempt
        self.hedge_wins = 0  # of those, answered by the hedge
        self.latency = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)


class RouteStats:
    """One deployment's attempts for one model group, their tokens and cost: one object, so that a request
    pays one dict lookup per attempt and attribute increments after it."""

    __slots__ = ("vendor", "ok", "others", "failovers", "input", "output", "cached", "cost", "list_cost", "latency")

    def __init__(self, vendor: str):
        self.vendor = vendor
        self.ok = 0  # answered attempts: nearly all of them, so a slot, not a dict entry
        self.others: dict[str, int] = {}  # failed | refused | abandoned | cancelled -> attempts
        self.failovers = 0  # requests it served after an earlier attempt failed
        self.input = self.output = self.cached = 0
        self.cost = 0.0  # billed USD, the ledger's figure
        self.list_cost = 0.0  # the same usage at list price
        self.latency = Histogram(LATENCY_BUCKETS)  # of its successful attempts

    @property
    def results(self) -> dict[str, int]:
        """Attempts by result (ok | failed | refused | abandoned | cancelled), as scrapes read them."""
        return {"ok": self.ok, **self.others} if self.ok else dict(self.others)


class TeamStats:
    __slots__ = ("by_class", "cost")

    def __init__(self):
        self.by_class = [0] * len(STATUS_CLASSES)
        self.cost: dict[str, float] = {}  # vendor -> billed USD


class Pricing:
    """The ledger's money for the counters: one pricing (ledger.money.record_costs), never a copy of it here.

    With the ledger on, its recorder has priced every attempt before telemetry hears of the request
    (`attempt.ledger`: list, billed and effective cost, the same tuple it spools), so the counters only read it.
    With the ledger off, an answered attempt's reported usage is priced by the same function (record.money_of)."""

    __slots__ = ("deployments", "commitments", "priced")

    def __init__(self, deployments: list[Any], commitments: tuple = ()):
        self.deployments = {d.name: d for d in deployments}
        self.commitments = commitments
        self.priced = {d.name for d in deployments  # the deployments the cost families list
                       if d.price.input_per_mtok or d.price.output_per_mtok or d.price.cached_input_per_mtok}

    def money(self, attempt: Any) -> tuple | None:
        """(input, cached, cache write, output tokens, estimated, list, billed, effective, commitment) of an
        attempt as the ledger records it; None when it cost nothing (no answer, or the ledger off and no usage)."""
        money = attempt.ledger
        if money is None and attempt.status == "ok" and attempt.usage is not None:
            deployment = self.deployments.get(attempt.deployment)
            if deployment is not None:
                money = money_of(deployment, attempt.usage, time.time(), self.commitments, 0)
        return money

    def request_cost(self, ctx: Any) -> float:
        """The request's billed USD: the ledger's (ctx.cost_usd) when it recorded it, else priced the same way."""
        if ctx.cost_usd is not None:
            return ctx.cost_usd
        total = 0.0
        for attempt in ctx.attempts:
            money = self.money(attempt)
            if money is not None:
                total += money[6]
        return total


class Metrics:
    """What happened to every request that reached a model group, and to those answered before one."""

    def __init__(self, pricing: Pricing):
        self.pricing = pricing
        self.groups: dict[str, GroupStats] = {}
        self.routes: dict[tuple[str, str], RouteStats] = {}  # (group, deployment)
        self.attempt_errors: dict[tuple[str, str], int] = {}  # (deployment, error class)
        self.unrouted: dict[tuple[str, str], int] = {}  # (route, status class): answered before any model group
        # Per (team, model group): requests by status class and their cost. Only requests whose key belongs to a
        # team (a declared one: the label is bounded by the configuration) are counted here.
        self.teams: dict[tuple[str, str], TeamStats] = {}

    def observe(self, ctx: Any, status: int, end: float) -> float:
        """Count the request; returns its billed cost (USD, the ledger's figure), which the access log reuses."""
        group = ctx.group
        stats = self.groups.get(group)
        if stats is None:
            stats = self.groups[group] = GroupStats()
        code_class = 1 if status == 200 else status // 100 - 1 if 100 <= status < 600 else 4
        stats.by_class[code_class] += 1
        # Histogram.observe, inlined: a call less per histogram on every request
        latency = stats.latency
        value = end - ctx.arrival
        latency.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        latency.sum += value
        if ctx.first_output is not None:
            stats.ttft.observe(ctx.first_output - ctx.arrival)
        if ctx.hedged:
            stats.hedged += 1
            stats.hedge_wins += any(a.hedged and a.status == "ok" for a in ctx.attempts)
        team = None
        if ctx.team is not None:
            key = (ctx.team, group)
            team = self.teams.get(key)
            if team is None:
                team = self.teams[key] = TeamStats()
            team.by_class[code_class] += 1
        failed = False
        cost = 0.0
        for attempt in ctx.attempts:  # most requests have one: no locals set up for a loop
            key = (group, attempt.deployment)
            route = self.routes.get(key)
            if route is None:
                route = self.routes[key] = RouteStats(attempt.vendor)
            if attempt.status == "ok":
                route.ok += 1
                if failed:
                    route.failovers += 1
                if attempt.end is not None:
                    latency = route.latency
                    value = attempt.end - attempt.start
                    latency.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
                    latency.sum += value
                usage = attempt.usage
                if usage is not None:
                    route.input += usage.input_tokens
                    route.output += usage.output_tokens
                    route.cached += usage.cached_tokens
            else:
                result = attempt.status or "abandoned"
                others = route.others
                others[result] = others.get(result, 0) + 1
                if attempt.error_kind is not None:
                    failed = failed or result == "failed"
                    key = (attempt.deployment, attempt.error_kind)
                    self.attempt_errors[key] = self.attempt_errors.get(key, 0) + 1
            money = attempt.ledger  # what the ledger recorded for it: an answer, or a stream cut after it began
            if money is None:
                money = self.pricing.money(attempt)  # the ledger off: priced here, the same way
            if money is not None and (list_cost := money[5]):
                billed = money[6]
                route.list_cost += list_cost
                route.cost += billed
                cost += billed
                if team is not None and billed:
                    team.cost[attempt.vendor] = team.cost.get(attempt.vendor, 0.0) + billed
        return cost

    def observe_unrouted(self, route: str, status: int) -> None:
        key = (route, STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx")
        self.unrouted[key] = self.unrouted.get(key, 0) + 1


def spend(metrics: Metrics) -> dict[tuple[str | None, str, str], float]:
    """Billed USD since start per (team, model group, vendor); None: requests of no team (the master key, keys
    without one), what the deployments' cost leaves after the teams' share."""
    out: dict[tuple[str | None, str, str], float] = {}
    for (group, _), route in metrics.routes.items():
        if route.cost:
            key = (None, group, route.vendor)
            out[key] = out.get(key, 0.0) + route.cost
    for (team, group), stats in metrics.teams.items():
        for vendor, usd in stats.cost.items():
            out[(team, group, vendor)] = out.get((team, group, vendor), 0.0) + usd
            out[(None, group, vendor)] = out.get((None, group, vendor), 0.0) - usd
    return {key: usd for key, usd in out.items() if usd > 1e-12}
