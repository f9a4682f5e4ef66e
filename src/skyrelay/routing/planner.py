"""The routing decision for one request: which deployments to try, in which order. Pure policy, no I/O.

The asking group's deployments come first: its lowest commitment tier first (capacity already paid for), each tier
ordered by the group's strategy, the next tier after it, so a tier spills into the next exactly when it has no
available deployment with headroom, or when its candidates fail. Then its fallback groups, breadth first (the
asking group's own fallback list, in order, before its fallbacks' fallbacks), each ordered the same way.
A group is visited once and a deployment listed once, so cycles and shared deployments are harmless. When the
prompt fits none of a group's deployments' context windows, its `context_fallbacks` are visited (before its
fallbacks). Residency fences every group visited, fallbacks included; each group's concentration cap orders its own
deployments (routing/policies.py).
Everything routing knows about a deployment it reads from the RoutingView.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from .policies import CONCENTRATION, CONTEXT_WINDOW, NEVER, RESIDENCY, inside
from .strategies import STRATEGIES
from .view import RoutingView


@dataclass(slots=True)
class Plan:
    candidates: list  # deployments in the order to try them
    skipped: list[tuple[object, str, float]]  # (deployment, reason, seconds until available), unavailable now
    max_attempts: int  # the asking group's budget of attempts, across all candidates
    over_cap: list | None = None  # candidates whose vendor is over its group's concentration cap (on_breach: serve)

    def soonest_available(self) -> float | None:
        """Seconds until the first skipped deployment can be tried again (a Retry-After hint), None if none."""
        return min((s[2] for s in self.skipped), default=None)


def plan(group, groups: Mapping[str, object], view: RoutingView, now: float, rng: Random, request=None) -> Plan:
    """`request` (a RequestContext, optional) sizes the token estimate checked against each deployment's tpm and
    context_window, is what the cost- and prefix-aware strategies read, and may narrow the residency."""
    candidates: list = []
    skipped: list = []
    fences = _fences(group, request)
    if not group.fallbacks and not group.context_fallbacks:  # the common case: no bookkeeping for duplicates
        over_cap, _ = _add_group(group, fences, view, now, rng, request, candidates, skipped, None)
        return Plan(candidates, skipped, group.max_attempts, over_cap)
    seen_deployments: set[str] = set()
    seen_groups = {group.name}
    queue = [group]
    over_cap = None
    for current in queue:  # the queue grows while we walk it: breadth first
        own = fences if current is group or current.residency is None else fences + (current.residency,)
        capped, fits_none = _add_group(current, own, view, now, rng, request, candidates, skipped, seen_deployments)
        if capped:
            over_cap = capped if over_cap is None else over_cap + capped
        # A prompt too long for every deployment goes to the context fallbacks, ahead of the ordinary ones.
        for name in (current.context_fallbacks + current.fallbacks) if fits_none else current.fallbacks:
            fallback = groups.get(name)
            if fallback is not None and name not in seen_groups:  # unknown names: config validation's job
                seen_groups.add(name)
                queue.append(fallback)
    return Plan(candidates, skipped, group.max_attempts, over_cap)


def _fences(group, request) -> tuple:
    """The residency sets a deployment must be inside: the asking group's, the request header's, the key's."""
    if request is None:
        return () if group.residency is None else (group.residency,)
    fences = (group.residency, request.residency, getattr(request, "key_residency", None))  # test doubles may lack it
    return tuple(fence for fence in fences if fence is not None)


def _add_group(group, fences, view, now, rng, request, candidates, skipped, seen) -> tuple[list | None, bool]:
    """Append the group's available deployments, tier by tier, ordered, to candidates; the others to skipped.
    Returns the candidates kept although over the concentration cap, and whether the prompt fit no deployment."""
    strategy = _strategy(group.strategy)
    unavailable_reason = view.unavailable_reason
    start = len(candidates)
    too_long = placed = 0
    for members in group.tiers or (group.deployments,):
        available = []
        for d in members:
            if seen is not None:
                if d.name in seen:
                    continue
                seen.add(d.name)
            if fences and not inside(d, fences):
                skipped.append((d, RESIDENCY, NEVER))
                continue
            placed += 1
            if d.context_window is not None and request is not None \
                    and view.prompt_tokens(d, request) > d.context_window:
                too_long += 1
                skipped.append((d, CONTEXT_WINDOW, NEVER))
                continue
            tokens = 0 if d.tpm is None else view.tokens_for(d, request)  # only a tpm needs the estimate
            reason = unavailable_reason(d, now, tokens)
            if reason is None:
                available.append(d)
            else:
                skipped.append((d, reason, view.seconds_until_available(d, reason, now, tokens)))
        if available:
            candidates += strategy(available, view, rng, now, request, group)
    over_cap = None
    if group.concentration is not None and len(candidates) > start:
        over_cap = _cap_vendors(group, view, now, candidates, start, skipped)
    return over_cap, too_long > 0 and too_long == placed


def _cap_vendors(group, view, now, candidates, start, skipped) -> list | None:
    """Put the group's candidates whose vendor is over its share behind the others (or skip them, on_breach:
    refuse); when only such vendors can serve, keep them (serve) or skip them all (refuse)."""
    policy = group.concentration
    over = view.vendors_over_cap(group.name, policy, now)
    if not over:
        return None
    mine = candidates[start:]
    under = [d for d in mine if d.vendor not in over]
    capped = [d for d in mine if d.vendor in over]
    if not capped:
        return None
    if policy.on_breach == "refuse":
        del candidates[start:]
        candidates += under
        for d in capped:
            skipped.append((d, CONCENTRATION, view.seconds_until_share(group.name, d.vendor, now, policy)))
        return None
    if under:
        del candidates[start:]
        candidates += under
        candidates += capped
    return capped


def _strategy(name: str):
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
