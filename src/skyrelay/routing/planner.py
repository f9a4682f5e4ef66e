"""The routing decision for one request: which deployments to try, in which order. Pure policy, no I/O.

The asking group's deployments come first: its lowest commitment tier first (capacity already paid for), each tier
ordered by the group's strategy, the next tier after it, so a tier spills into the next exactly when it has no
available deployment with headroom, or when its candidates fail. Then its fallback groups, breadth first (the
asking group's own fallback list, in order, before its fallbacks' fallbacks), each ordered the same way.
A group is visited once and a deployment listed once, so cycles and shared deployments are harmless.
Everything routing knows about a deployment it reads from the RoutingView.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from .strategies import STRATEGIES
from .view import RoutingView


@dataclass(slots=True)
class Plan:
    candidates: list  # deployments in the order to try them
    skipped: list[tuple[object, str, float]]  # (deployment, reason, seconds until available), unavailable now
    max_attempts: int  # the asking group's budget of attempts, across all candidates

    def soonest_available(self) -> float | None:
        """Seconds until the first skipped deployment can be tried again (a Retry-After hint), None if none."""
        return min((s[2] for s in self.skipped), default=None)


def plan(group, groups: Mapping[str, object], view: RoutingView, now: float, rng: Random, request=None) -> Plan:
    """`request` (a RequestContext, optional) sizes the token estimate checked against each deployment's tpm, and
    is what the cost- and prefix-aware strategies read."""
    candidates: list = []
    skipped: list = []
    if not group.fallbacks:  # the common case: no bookkeeping for duplicates
        _add_group(group, view, now, rng, request, candidates, skipped, None)
        return Plan(candidates, skipped, group.max_attempts)
    seen_deployments: set[str] = set()
    seen_groups = {group.name}
    queue = [group]
    for current in queue:  # the queue grows while we walk it: breadth first
        _add_group(current, view, now, rng, request, candidates, skipped, seen_deployments)
        for name in current.fallbacks:
            fallback = groups.get(name)
            if fallback is not None and name not in seen_groups:  # unknown names: config validation's job
                seen_groups.add(name)
                queue.append(fallback)
    return Plan(candidates, skipped, group.max_attempts)


def _add_group(group, view, now, rng, request, candidates, skipped, seen) -> None:
    """Append the group's available deployments, tier by tier, ordered, to candidates; the others to skipped."""
    strategy = _strategy(group.strategy)
    unavailable_reason = view.unavailable_reason
    for members in group.tiers or (group.deployments,):
        available = []
        for d in members:
            if seen is not None:
                if d.name in seen:
                    continue
                seen.add(d.name)
            tokens = 0 if d.tpm is None else view.tokens_for(d, request)  # only a tpm needs the estimate
            reason = unavailable_reason(d, now, tokens)
            if reason is None:
                available.append(d)
            else:
                skipped.append((d, reason, view.seconds_until_available(d, reason, now, tokens)))
        if available:
            candidates += strategy(available, view, rng, now, request, group)


def _strategy(name: str):
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
