"""The aggregated engine: flows of requests per time step instead of requests, numpy over the whole run.

Between two events the routing does not change its mind about order: the gateway's planner (`routing.planner.plan`,
over a view in which the deployments that are down have tripped breakers) gives each model group's candidates in
the order the gateway tries them, residency fences, tiers and fallback groups included. Consecutive candidates of one
group and tier form a level; each step's flow fills the levels in turn, each deployment up to its capacity, split
inside a level by weight (the cheapest-first strategies fill in price order). A deployment's capacity per second is
the least of its gateway limits (rpm, tpm, max_concurrency over the service time) and its cloud's (quota, provisioned
throughput, serving slots over the service time at full load). What no level takes is refused (a 429).
Latency per deployment and step: the service time at that load (load_slowdown) plus the M/M/c queue's wait
(Erlang C) at the step's utilisation, as a handful of quantile points added to the same histograms the event engine
fills. See docs/simulate.md for where the two engines differ.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from ..routing.health import HealthBook
from ..routing.planner import plan
from ..routing.view import RoutingView
from .scenario import Scenario
from .tally import Tally
from .world import World, timeline

POINTS = 16  # quantile points per deployment and step
_PRICE_ORDERED = ("cheapest", "cheapest_within")
_SATURATED = 0.999  # utilisation above which the queue is taken as full


def run_flow_engine(scenario: Scenario, progress: Callable[[float], None] | None = None,
                    step_s: float | None = None) -> Tally:
    traffic = scenario.traffic
    duration = scenario.duration_s
    dt = step_s or (1.0 if duration <= 2 * 86400 else duration / 172800)
    steps = int(math.ceil(duration / dt))
    t = (np.arange(steps) + 0.5) * dt
    rate = traffic.rate(t)
    deployments = scenario.config.deployments()
    names = [d.name for d in deployments]
    index = {n: i for i, n in enumerate(names)}
    tally = Tally(names, [name for name, _ in traffic.teams], duration)
    tally.engine = "flow"
    world = World(scenario)
    changes = timeline(scenario)
    bounds = sorted({0.0, duration, *(when for when, _ in changes if when < duration)})
    ctx = _Sizes(scenario)
    first_tier = {name: frozenset(d.name for d in (g.tiers[0] if g.tiers else g.deployments))
                  for name, g in scenario.config.model_groups.items()}
    for a, b in zip(bounds, bounds[1:]):
        while changes and changes[0][0] <= a:
            changes.pop(0)[1](world)
        steps_in = (t >= a) & (t < b)
        if not steps_in.any():
            continue
        ts = t[steps_in]
        served = np.zeros((len(names), len(ts)))
        asked_by: dict[tuple[int, str], np.ndarray] = {}
        refused = np.zeros(len(ts))
        breaches = np.zeros(len(ts))
        caps = {d.name: _capacity(d, scenario, world, ctx) for d in deployments}
        for group_name, share in traffic.mix:
            group = world.groups[group_name]
            demand = rate[steps_in] * share
            flows: dict = {}  # deployment -> its flow for this group, in the order the levels were filled
            for level in _levels(group, world, a):
                if not demand.any():
                    break
                taken = _fill(level, demand, caps, group.strategy)
                for d, flow in zip(level, taken):
                    flows[d] = flows.get(d, 0) + flow
                    caps[d.name] = caps[d.name] - flow
                demand = demand - sum(taken)
            if group.concentration is not None and flows:
                demand = demand + _cap_vendors(group, flows, caps, breaches)
            for d, flow in flows.items():
                k = index[d.name]
                served[k] += flow
                asked_by[(k, group_name)] = asked_by.get((k, group_name), 0) + flow
            refused += np.maximum(demand, 0.0)
        _tally(tally, scenario, ts, dt, served, asked_by, refused, deployments, first_tier, ctx, world)
        tally.breaches += float((breaches * dt).sum())
        if progress is not None:
            progress(b / duration)
    tally.add_arrivals(t, rate * dt)
    shares = np.array([s for _, s in traffic.teams])[:, None]  # flows carry no team: split in the traffic's shares
    for team_field in (tally.team_requests, tally.team_input, tally.team_output):
        team_field[:] = team_field.sum(axis=0, keepdims=True) * shares
    tally.requests_simulated = float((rate * dt).sum())
    return tally


class _Sizes:
    """The traffic's mean sizes, and each cloud's service time, as the capacities and the latency need them."""

    def __init__(self, scenario: Scenario):
        traffic = scenario.traffic
        self.input = traffic.input_tokens.mean
        if traffic.prefixes is not None:  # shared-prefix prompts are at least the prefix long
            share, tokens = traffic.prefixes.share, traffic.prefixes.tokens
            self.input = (1 - share) * self.input + share * max(self.input, tokens)
        self.output = traffic.output_tokens.mean
        if traffic.max_tokens is not None:
            self.output = min(self.output, traffic.max_tokens)
        self.cap = traffic.max_tokens if traffic.max_tokens is not None else self.output
        self.prefixes = traffic.prefixes

    def cached(self, cloud) -> float:
        """Mean cached prompt tokens per request on this cloud (a shared prefix taken as warm)."""
        cache, prefixes = cloud.capacity.prompt_cache, self.prefixes
        if cache is None or prefixes is None or prefixes.tokens < cache.min_tokens:
            return 0.0
        return prefixes.share * (prefixes.tokens // cache.block_tokens * cache.block_tokens)

    def service(self, cloud, load: float | np.ndarray) -> float | np.ndarray:
        """Mean seconds a request holds a slot at `load` (the share of busy slots)."""
        slow = cloud.capacity.load_slowdown
        ttft, interval = cloud.ttft_ms / 1000, 1 / cloud.tokens_per_second
        if slow is not None:
            return ttft * (1 + slow.ttft * load) + self.output * interval * (1 + slow.tokens * load)
        return ttft + self.output * interval + np.zeros_like(load)  # the shape of `load`, whatever it is


def _levels(group, world: World, now: float) -> list[list]:
    """The group's candidates as the planner orders them with the down deployments' breakers open, cut into runs
    of one (group, tier)."""
    health = HealthBook()
    for name in world.down:
        for _ in range(health.policy.failure_threshold):
            health.on_failure(name, now)
    decision = plan(group, world.groups, RoutingView(health), now, random.Random(0))
    levels: list[list] = []
    last = None
    for d in decision.candidates:
        key = (d.group, d.tier)
        if key != last:
            levels.append([])
            last = key
        levels[-1].append(d)
    return levels


def _capacity(d, scenario: Scenario, world: World, sizes: _Sizes) -> float:
    """Requests per second the deployment can take in steady state."""
    if d.name in world.down:
        return 0.0
    cloud = scenario.clouds[d.name]
    capacity = cloud.capacity
    limits = [math.inf]
    tokens = sizes.input + sizes.cap  # what the gateway's tpm window holds once settled
    if d.rpm is not None:
        limits.append(d.rpm / 60)
    if d.tpm is not None:
        limits.append(d.tpm / 60 / tokens)
    full = sizes.service(cloud, 1.0)
    if d.max_concurrency is not None:
        limits.append(d.max_concurrency / sizes.service(cloud, min(d.max_concurrency / (capacity.concurrency or
                                                                                        math.inf), 1.0)))
    quota = world.quotas.get(d.name)
    if quota is not None:
        for limit, per in ((quota.rpm, 1.0), (quota.tpm, tokens), (quota.itpm, sizes.input),
                           (quota.otpm, sizes.cap)):
            if limit is not None:
                limits.append(limit / quota.window_s / per)
    if capacity.provisioned is not None:
        limits.append(capacity.provisioned.tpm / capacity.provisioned.window_s / (sizes.input + sizes.output))
    if capacity.concurrency:
        limits.append(capacity.concurrency / full)
    return min(limits)


def _fill(level: list, demand: np.ndarray, caps: dict, strategy: str) -> list[np.ndarray]:
    """Each deployment's share of `demand`, none past its capacity: by weight, re-spreading what a full one
    cannot take over the others (water filling); in price order for the cheapest-first strategies."""
    cap = [np.broadcast_to(np.maximum(caps[d.name], 0.0), demand.shape) for d in level]
    if strategy in _PRICE_ORDERED:
        order = sorted(range(len(level)), key=lambda i: (level[i].price.input_per_mtok +
                                                         level[i].price.output_per_mtok, i))
        out = [None] * len(level)
        left = demand
        for i in order:
            out[i] = np.minimum(left, cap[i])
            left = left - out[i]
        return out
    weights = np.array([max(d.weight, 0.0) for d in level])
    if not weights.sum():
        weights = np.ones(len(level))
    out = [np.zeros_like(demand) for _ in level]
    left = demand.copy()
    for _ in range(len(level)):
        open_weight = sum(weights[i] * (out[i] < cap[i]) for i in range(len(level)))
        if not np.any(left > 1e-12):
            break
        for i in range(len(level)):
            share = np.where(open_weight > 0, left * weights[i] / np.where(open_weight > 0, open_weight, 1), 0)
            grant = np.minimum(share * (out[i] < cap[i]), cap[i] - out[i])
            out[i] = out[i] + grant
        left = demand - sum(out)
    return out


def _cap_vendors(group, flows: dict, caps: dict, breaches: np.ndarray) -> np.ndarray:
    """Move the flow a vendor carries past the group's max_share to the other vendors' deployments with room (in
    the order they were filled); what cannot move is served anyway (on_breach: serve, counted in `breaches`) or
    refused (returned). Shares are of requests (a cost cap is treated as a request cap here)."""
    policy = group.concentration
    own = [d for d in flows if d.group == group.name]
    total = sum(flows[d] for d in own)
    vendors = {d.vendor for d in own}
    refused = np.zeros_like(total)
    for vendor in vendors:
        mine = [d for d in own if d.vendor == vendor]
        carried = sum(flows[d] for d in mine)
        excess = np.maximum(carried - policy.max_share * total, 0.0)
        if not excess.any():
            continue
        moved = np.zeros_like(excess)
        for other in (d for d in own if d.vendor != vendor):
            room = np.maximum(np.minimum(np.maximum(caps[other.name], 0.0), excess - moved), 0.0)
            flows[other] = flows[other] + room
            caps[other.name] = caps[other.name] - room
            moved = moved + room
        kept = excess - moved
        # take the moved (and, with refuse, the kept) flow off the vendor's deployments in proportion
        taken = moved + (kept if policy.on_breach == "refuse" else 0.0)
        for d in mine:
            part = np.where(carried > 0, flows[d] / np.where(carried > 0, carried, 1), 0) * taken
            flows[d] = flows[d] - part
            caps[d.name] = caps[d.name] + part
        if policy.on_breach == "refuse":
            refused = refused + kept
        else:
            breaches += kept
    return refused


def erlang_c(servers: int, offered: np.ndarray) -> np.ndarray:
    """P(wait) of an M/M/c queue with `servers` and `offered` load in Erlangs (each element), via Erlang B."""
    b = np.ones_like(offered)
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return np.where(rho < 1, b / np.maximum(1 - rho * (1 - b), 1e-12), 1.0)


def _tally(tally, scenario, ts, dt, served, asked_by, refused, deployments, first_tier, sizes, world) -> None:
    traffic = scenario.traffic
    p = (np.arange(POINTS) + 0.5) / POINTS
    rng = np.random.default_rng(scenario.seed)
    p_tokens, p_wait, p_rate = rng.permutation(p), rng.permutation(p), rng.permutation(p)
    out_q = traffic.output_tokens.quantiles(p_tokens)
    if traffic.max_tokens is not None:
        out_q = np.minimum(out_q, traffic.max_tokens)
    for k, d in enumerate(deployments):
        flow = served[k]
        if not flow.any():
            continue
        cloud = scenario.clouds[d.name]
        capacity = cloud.capacity
        c = capacity.concurrency or 0
        load = np.minimum(flow * sizes.service(cloud, 0.0) / c, 1.0) if c else np.zeros_like(flow)
        for _ in range(3):  # the load sets the service time, which sets the load
            service = sizes.service(cloud, load)
            load = np.minimum(flow * service / c, 1.0) if c else load
        wait_p, wait_rate = np.zeros_like(flow), np.ones_like(flow)
        saturated_wait = np.zeros_like(flow)
        # A gateway that keeps no more in flight than the cloud has slots never queues there: a loss system.
        if c and not (d.max_concurrency is not None and d.max_concurrency <= c):
            offered = flow * service
            wait_p = erlang_c(c, offered)
            wait_rate = np.maximum(c / service - flow, 1e-9)
            saturated = offered / c >= _SATURATED
            saturated_wait = np.where(saturated, capacity.queue * service / c, 0.0)  # a full queue's wait
            wait_p = np.where(saturated, 0.0, wait_p)
        slow = capacity.load_slowdown
        ttft0 = cloud.ttft_ms / 1000 * (1 + (slow.ttft if slow else 0) * load)
        interval0 = (1 / cloud.tokens_per_second) * (1 + (slow.tokens if slow else 0) * load)
        if cloud.distribution == "exponential":
            f_ttft = f_rate = -np.log(1 - p)
        else:
            f_ttft, f_rate = 1 + cloud.jitter * (2 * p - 1), 1 / (1 + cloud.jitter * (2 * p_rate - 1))
        tail = np.maximum(1 - p_wait[None, :], 1e-12) / np.maximum(wait_p[:, None], 1e-12)
        wait = np.where(p_wait[None, :] < 1 - wait_p[:, None], 0.0, -np.log(np.minimum(tail, 1.0)) /
                        wait_rate[:, None])
        wait = np.maximum(wait, saturated_wait[:, None])
        ttft = wait + ttft0[:, None] * f_ttft[None, :]
        latency = ttft + out_q[None, :] * interval0[:, None] * f_rate[None, :]
        weight = np.repeat(flow * dt / POINTS, POINTS)
        times = np.repeat(ts, POINTS)
        spilled = np.zeros_like(flow)
        for (kk, group_name), part in asked_by.items():
            if kk == k and d.name not in first_tier[group_name]:
                spilled = spilled + part
        spill_share = np.repeat(np.where(flow > 0, spilled / np.where(flow > 0, flow, 1), 0), POINTS)
        cached = sizes.cached(cloud)
        team = np.zeros(len(times), dtype=np.int64)
        tally.add_served(times, np.full(len(times), k), latency.ravel(), ttft.ravel(),
                         np.full(len(times), sizes.input), np.repeat(out_q[None, :], len(ts), 0).ravel(),
                         np.full(len(times), cached), spill_share, team, np.repeat(service, POINTS),
                         np.zeros(len(times)), weight=weight)
    tally.add_errors(ts, np.ones_like(ts), weight=refused * dt)
