"""The routing decision for one request: which deployments to try, in which order. Pure policy, no I/O.

The asking group's deployments come first, ordered by its strategy; then its fallback groups, breadth first (the
asking group's own fallback list, in order, before its fallbacks' fallbacks), each ordered by its own strategy.
A group is visited once and a deployment listed once, so cycles and shared deployments are harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from .health import HealthBook
from .strategies import STRATEGIES


@dataclass(slots=True)
class Plan:
    candidates: list  # deployments in the order to try them
    skipped: list[tuple[object, str, float]]  # (deployment, reason, seconds until available), unavailable now
    max_attempts: int  # the asking group's budget of attempts, across all candidates

    def soonest_available(self) -> float | None:
        """Seconds until the first skipped deployment can be tried again (a Retry-After hint), None if none."""
        return min((s[2] for s in self.skipped), default=None)


def plan(
    group,
    groups: Mapping[str, object],
    health: HealthBook,
    outstanding: Mapping[str, int],
    now: float,
    rng: Random,
) -> Plan:
    candidates: list = []
    skipped: list = []
    if not group.fallbacks:  # the common case: no bookkeeping for duplicates
        _add_group(group, health, outstanding, now, rng, candidates, skipped, None)
        return Plan(candidates, skipped, group.max_attempts)
    seen_deployments: set[str] = set()
    seen_groups = {group.name}
    queue = [group]
    for current in queue:  # the queue grows while we walk it: breadth first
        _add_group(current, health, outstanding, now, rng, candidates, skipped, seen_deployments)
        for name in current.fallbacks:
            fallback = groups.get(name)
            if fallback is not None and name not in seen_groups:  # unknown names: config validation's job
                seen_groups.add(name)
                queue.append(fallback)
    return Plan(candidates, skipped, group.max_attempts)


def _add_group(group, health, outstanding, now, rng, candidates, skipped, seen) -> None:
    """Append the group's available deployments, ordered, to candidates; the unavailable ones to skipped."""
    available = []
    for d in group.deployments:
        name = d.name
        if seen is not None:
            if name in seen:
                continue
            seen.add(name)
        reason = health.unavailable_reason(name, now)
        if reason is None:
            available.append(d)
        else:
            skipped.append((d, reason, health.seconds_until_available(name, now)))
    if available:
        candidates += _strategy(group.strategy)(available, outstanding, rng)


def _strategy(name: str):
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
