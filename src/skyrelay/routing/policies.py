"""The group's policies over which deployments may serve a request: residency, context window, vendor share.

Residency and the context window are fences: a deployment outside one is never sent the request, whatever else is
down. The concentration cap is a preference with a choice at its edge: a vendor over its `max_share` of the
group's traffic in the sliding window goes behind the vendors under it; when no vendor under it can serve, the
group's `on_breach` decides between serving anyway (`serve`, counted in `ShareBook.breaches`) and refusing
(`refuse`). Pure state and functions: callers pass `now`.
"""

from __future__ import annotations

from .quotas import DEFAULT_OUTPUT_TOKENS, _Log

RESIDENCY = "residency"  # outside the group's (or the request's) allowed geos and regions
SHARE_SLICE_S = 1.0  # seconds of attempts that share one entry of a vendor's window (windows are minutes or more)
CONTEXT_WINDOW = "context window"  # the estimated prompt is larger than its context_window
CONCENTRATION = "concentration"  # its vendor is over the group's max_share, and on_breach is refuse

NEVER = float("inf")  # a fence does not open with time: no Retry-After from it


def inside(deployment, fences: tuple) -> bool:
    """Whether the deployment's geo or region is in every fence (each a set of lower-case labels)."""
    geo = deployment.geo
    region = deployment.region.lower() if deployment.region else None
    for fence in fences:
        if geo not in fence and region not in fence:
            return False
    return True


def parse_residency(value: str) -> frozenset[str]:
    """The x-skyrelay-residency header: comma-separated geos or regions, case-insensitive; empty if none."""
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def estimated_cost(deployment, input_tokens: int, max_output: int | None) -> float:
    """US dollars this request is expected to cost on the deployment (its price, the estimated tokens)."""
    price = deployment.price
    output = max_output if max_output is not None else DEFAULT_OUTPUT_TOKENS
    return (input_tokens * price.input_per_mtok + output * price.output_per_mtok) / 1_000_000


class ShareBook:
    """Per model group and vendor, the requests (and estimated cost) sent in the group's sliding window."""

    __slots__ = ("_groups", "breaches", "refusals")

    def __init__(self):
        self._groups: dict[str, dict[str, _Log]] = {}
        self.breaches: dict[str, int] = {}  # per group: attempts served by a vendor over its cap (on_breach: serve)
        self.refusals: dict[str, int] = {}  # per group: requests refused for the cap (on_breach: refuse)

    def over_cap(self, group: str, policy, now: float) -> set[str]:
        """The vendors whose share of the group's window is above the policy's max_share (empty: none)."""
        amounts = self.amounts(group, policy, now)
        if not amounts:
            return _NONE
        total = sum(amounts.values())
        if total <= 0:
            return _NONE
        limit = policy.max_share * total
        return {vendor for vendor, amount in amounts.items() if amount > limit}

    def amounts(self, group: str, policy, now: float) -> dict[str, float]:
        """What each vendor carried of the group's window, in the policy's measure (requests, or estimated USD)."""
        vendors = self._groups.get(group)
        if not vendors:
            return {}
        by_cost = policy.measure == "cost"
        amounts = {}
        for vendor, log in vendors.items():
            log.expire(now, policy.window_s)
            amounts[vendor] = log.tokens if by_cost else log.requests
        return amounts

    def seconds_until_share(self, group: str, vendor: str, now: float, policy) -> float:
        """When the vendor's oldest counted request leaves the window (a Retry-After hint for a refusal)."""
        log = self._groups.get(group, {}).get(vendor)
        if log is None or not log.entries:
            return 0.0
        return max(0.0, log.entries[0][0] + policy.window_s - now)

    def record(self, group: str, vendor: str, now: float, cost: float) -> tuple:
        """Count one attempt sent to the vendor; the hold is what `refund` takes back."""
        vendors = self._groups.get(group)
        if vendors is None:
            vendors = self._groups[group] = {}
        log = vendors.get(vendor)
        if log is None:
            log = vendors[vendor] = _Log(SHARE_SLICE_S)
        return log.add(now, cost)

    def refund(self, group: str, vendor: str, held: tuple) -> None:
        """The attempt was refused before it was sent: it carried nothing (unless it left the window already)."""
        log = self._groups.get(group, {}).get(vendor)
        if log is not None:
            log.take_back(held)

    def count(self, book: dict[str, int], group: str) -> None:
        book[group] = book.get(group, 0) + 1

    def snapshot(self, now: float) -> dict[str, dict[str, int]]:
        """Requests per vendor per group in the window as last expired (for operators and tests)."""
        return {group: {vendor: log.requests for vendor, log in vendors.items()}
                for group, vendors in self._groups.items()}


_NONE: set[str] = frozenset()  # type: ignore[assignment]
