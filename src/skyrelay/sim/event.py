"""The event-level engine: every request routed by the gateway's own planner, one at a time, on a simulated clock.

Arrivals are Poisson at the traffic's rate of each second, drawn (with their group, team, sizes and prefix) a chunk
of simulated time at a time with numpy. Each request is planned by `routing.planner.plan` over a `RoutingView`
whose health, in-flight counts, quota windows, latencies and vendor shares are the real books, fed as the
dispatcher feeds them (dispatch.py): reserve the quota estimate, count the vendor share, try the candidate; a
cloud's refusal is a failure (a 429 a cool-down) and the next candidate is tried within `max_attempts`; an answer
settles the quota with the usage and closes the breaker's count. Each cloud (cloud.py) queues the request for a
serving slot; its completion is an event on a heap. Gateway and network time are taken as zero.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import numpy as np

from ..routing.health import HealthBook
from ..routing.latency import LatencyBook
from ..routing.planner import plan
from ..routing.policies import ShareBook, estimated_cost
from ..routing.quotas import QuotaBook
from ..routing.strategies import LATENCY_AWARE
from ..routing.view import RoutingView
from .arrivals import Arrivals
from .cloud import SimCloud
from .scenario import Scenario
from .tally import Tally
from .world import World, timeline

TARGET_PER_CHUNK = 20_000  # arrivals drawn (and tallied) at once: bounded memory whatever the run's length


class SimRequest:
    """What the planner and strategies read of a request (the RequestContext's routing fields)."""

    __slots__ = ("body_bytes", "max_output", "residency", "key_residency", "prefix_key", "prompt")

    def __init__(self):
        self.body_bytes = 0
        self.max_output = None
        self.residency = self.key_residency = self.prefix_key = self.prompt = None


class EventEngine:
    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        config = scenario.config
        self.world = World(scenario)
        self.deployments = config.deployments()
        names = [d.name for d in self.deployments]
        self.index = {name: i for i, name in enumerate(names)}
        self.clouds = [SimCloud(scenario.clouds[d.name], d.kind) for d in self.deployments]
        self.quota_in_force = [scenario.clouds[d.name].capacity.quota for d in self.deployments]
        self.health = HealthBook(config.health)
        self.outstanding = {name: 0 for name in names}
        self.quotas = QuotaBook()
        self.latencies = LatencyBook()
        self.shares = ShareBook()
        self.view = RoutingView(self.health, self.outstanding, self.quotas, self.latencies, self.shares)
        self.measures_latency = any(g.strategy in LATENCY_AWARE for g in config.model_groups.values())
        self.capped = {name: g.concentration for name, g in config.model_groups.items() if g.concentration}
        self.rng = random.Random(scenario.seed)
        self.tally = Tally(names, [t for t, _ in scenario.traffic.teams], scenario.duration_s)
        self.tally.engine = "event"
        self.heap: list = []
        self.seq = 0
        self.served: list[tuple] = []
        self.failed: list[tuple] = []
        # The deployments a group fills first (its lowest tier): anything else serving its request is spillover.
        self.first_tier = {name: frozenset(d.name for d in (g.tiers[0] if g.tiers else g.deployments))
                           for name, g in config.model_groups.items()}

    def run(self, progress: Callable[[float], None] | None = None) -> Tally:
        scenario = self.scenario
        arrivals = Arrivals(scenario)
        changes = timeline(scenario)
        duration = scenario.duration_s
        peak = max(float(scenario.traffic.rate(np.arange(0.0, duration, 60.0) + 0.5).max()), 1e-9)
        chunk = min(max(TARGET_PER_CHUNK / peak, 1.0), 3600.0)
        start = 0.0
        while start < duration:
            end = min(start + chunk, duration)
            batch = arrivals.draw(start, end)
            self._run_batch(batch, changes)
            self._flush()
            start = end
            if progress is not None:
                progress(start / duration)
        self._drain()
        self._flush()
        self.tally.breaches = sum(self.shares.breaches.values())
        return self.tally

    def _apply_changes(self, changes: list, now: float) -> None:
        world = self.world
        while changes and changes[0][0] <= now:
            _, change = changes.pop(0)
            change(world)
        for k, (d, cloud) in enumerate(zip(self.deployments, self.clouds)):
            cloud.down = d.name in world.down
            quota = world.quotas.get(d.name)
            if quota is not self.quota_in_force[k]:
                self.quota_in_force[k] = quota
                cloud.set_quota(quota, now)

    def _run_batch(self, batch, changes: list) -> None:
        times, groups_ix, teams, inputs, outputs, prefixes = batch
        world = self.world
        group_names = [g for g, _ in self.scenario.traffic.mix]
        view, quotas, health, shares = self.view, self.quotas, self.health, self.shares
        outstanding, index, clouds, capped = self.outstanding, self.index, self.clouds, self.capped
        heap, rng, finish, start = self.heap, self.rng, self._finish, self._start
        failed_append = self.failed.append
        first_tier = self.first_tier
        max_output = self.scenario.traffic.max_tokens
        prefix_tokens = self.scenario.traffic.prefixes.tokens if self.scenario.traffic.prefixes else 0
        tally = self.tally
        request = SimRequest()
        request.max_output = max_output
        next_change = changes[0][0] if changes else float("inf")
        groups = world.groups
        for i in range(len(times)):
            t = times[i]
            while heap and heap[0][0] <= t:
                finish(heapq.heappop(heap))
            if t >= next_change:
                self._apply_changes(changes, t)
                next_change = changes[0][0] if changes else float("inf")
                groups = world.groups
            group = groups[group_names[groups_ix[i]]]
            prompt = inputs[i]
            output = outputs[i]
            if max_output is not None and output > max_output:  # the answer stops at the cap clients send
                output = max_output
            request.body_bytes = prompt * 4
            prefix = prefixes[i]
            request.prefix_key = None if prefix < 0 else prefix * 2654435761 + 1
            decision = plan(group, groups, view, t, rng, request)
            attempts = 0
            throttled = True
            placed = False
            for d in decision.candidates:
                if attempts >= decision.max_attempts:
                    break
                name = d.name
                tokens = quotas.estimate(d, request.body_bytes, max_output)
                if attempts and view.unavailable_reason(d, t, tokens) is not None:
                    continue  # went unavailable since the plan (its cool-down began with the last refusal)
                attempts += 1
                entry = quotas.reserve(d, t, tokens)
                if capped:
                    self._count_share(d, decision, request, t)
                health.on_attempt(name, t)
                k = index[name]
                cloud = clouds[k]
                cached = cloud.cached_tokens(prefix, prefix_tokens, prompt, t) if prefix >= 0 else 0
                cap = max_output if max_output is not None else output
                refusal = cloud.refuse(t, prompt, cached, cap)
                if refusal is not None:
                    reason, was_throttled, retry_after = refusal
                    throttled = throttled and was_throttled
                    tally.refused(reason)
                    quotas.settle(d, entry, sent=True)
                    health.on_failure(name, t, retry_after=retry_after, throttled=was_throttled)
                    continue
                outstanding[name] += 1
                record = [t, k, d, entry, prompt, output, cached, teams[i], name not in first_tier[group.name],
                          attempts > 1, prompt - cached + cap, 0.0, 0.0]
                if cloud.has_slot():
                    start(record, cloud, t)
                else:
                    cloud.waiting.append(record)
                placed = True
                break
            if not placed:
                failed_append((t, throttled))
        tally.add_arrivals(np.asarray(times))

    def _start(self, record: list, cloud: SimCloud, now: float) -> None:
        rng = self.rng
        ttft, whole = cloud.service(record[5], rng.random(), rng.random())
        record[11] = now + ttft  # first token
        record[12] = now  # slot taken
        self.seq += 1
        heapq.heappush(self.heap, (now + whole, self.seq, record))

    def _finish(self, item: tuple) -> None:
        end, _, record = item
        arrival, k, d, entry, prompt, output, cached, team, spilled, failover, estimate, first, began = record
        cloud = self.clouds[k]
        cloud.in_use -= 1
        if cloud.waiting:
            self._start(cloud.waiting.popleft(), cloud, end)
        name = d.name
        self.outstanding[name] -= 1
        self.health.on_success(name, end)
        max_output = self.scenario.traffic.max_tokens
        self.quotas.settle(d, entry, sent=True, used_tokens=prompt + (max_output if max_output else output),
                           input_tokens=prompt, body_bytes=prompt * 4)
        cloud.correct_provisioned(estimate, prompt - cached + output, end)
        if self.measures_latency:
            latencies = self.latencies
            latencies.observe_first_token(name, end, first - began)
            if output > 1:
                latencies.observe_tokens(name, end, end - first, output - 1)
            latencies.observe_output(output)
        self.served.append((arrival, k, end - arrival, first - arrival, prompt, output, cached, spilled, team,
                            end - began, failover))

    def _count_share(self, d, decision, request, now: float) -> None:
        policy = self.capped.get(d.group)
        if policy is None:
            return
        shares = self.shares
        if decision.over_cap and d in decision.over_cap:
            shares.count(shares.breaches, d.group)
        cost = 0.0
        if policy.measure == "cost":
            cost = estimated_cost(d, self.quotas.input_tokens(d, request.body_bytes), request.max_output)
        shares.record(d.group, d.vendor, now, cost)

    def _drain(self) -> None:
        """Let the requests still queued or in flight at the end finish (they arrived within the run)."""
        heap = self.heap
        while heap:
            self._finish(heapq.heappop(heap))

    def _flush(self) -> None:
        tally = self.tally
        if self.served:
            cols = np.array(self.served, dtype=float).T
            self.served.clear()
            t, k, latency, ttft, prompt, output, cached, spilled, team, busy, failover = cols
            tally.add_served(t, k, latency, ttft, prompt, output, cached, spilled, team, busy, failover)
        if self.failed:
            cols = np.array(self.failed, dtype=float).T
            self.failed.clear()
            tally.add_errors(cols[0], cols[1])
        tally.requests_simulated = float(tally.arrivals.sum())


def run_event_engine(scenario: Scenario, progress: Callable[[float], None] | None = None) -> Tally:
    return EventEngine(scenario).run(progress)
