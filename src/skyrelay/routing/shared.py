"""The quota and vendor-share books of a replica that shares its counters with others (state.backend: redis).

The planner reads these as it reads the one-process books, without I/O: each answer comes from the last snapshot
of the shared counters (every replica's attempts, refreshed off the request path by dispatch_shared.py) plus
this replica's own attempts since that snapshot. The snapshot is a guide, not the guard: an attempt's shared
quota is reserved atomically in Redis before it is sent, and a refusal there marks the deployment full here until
the next snapshot. While no fresh snapshot is loaded (Redis unreachable) the books answer as the one-process books
do, from this replica's own attempts (the state backend's local fallback then enforces this replica's share).

Pure state: times are this book's clock (`now`), the snapshot arrives already converted to it.
"""

from __future__ import annotations

from .policies import ShareBook
from .quotas import QUOTA, QuotaBook

REQUESTS, TOKENS = 0, 1  # the fields of a deployment's shared count


class SharedQuotaBook(QuotaBook):
    __slots__ = ("shared", "_seen", "_frees_at")

    def __init__(self):
        super().__init__()
        self.shared = False  # True while a snapshot is loaded: the counts below are every replica's
        self._seen: dict[str, list] = {}  # per deployment: [requests, tokens] in the shared window
        self._frees_at: dict[str, float] = {}  # per deployment: when its oldest counted second leaves the window

    def load(self, seen: dict[str, list], frees_at: dict[str, float]) -> None:
        """A fresh snapshot: every replica's counts (lists of [requests, tokens], owned by the book from now)."""
        self._seen = seen
        self._frees_at = frees_at
        self.shared = True

    def lose(self) -> None:
        """No snapshot can be read: answer from this replica's own attempts until one can."""
        self.shared = False
        self._seen = {}

    def shared_usage(self) -> dict[str, tuple[int, int]] | None:
        """Every replica's (requests, tokens) in each deployment's window, as the planner reads them; None while no
        snapshot is loaded (then only this replica's own attempts count: `snapshot`)."""
        if not self.shared:
            return None
        return {name: (seen[REQUESTS], seen[TOKENS]) for name, seen in self._seen.items()}

    def mark_full(self, deployment, tokens: bool, now: float, wait: float) -> None:
        """The shared counter refused an attempt: the deployment has no room (requests, or `tokens`) here either,
        until the next snapshot says otherwise (or `wait` seconds pass)."""
        if not self.shared:
            return
        seen = self._seen.setdefault(deployment.name, [0, 0])
        if tokens and deployment.tpm is not None:
            seen[TOKENS] = max(seen[TOKENS], deployment.tpm)
        elif deployment.rpm is not None:
            seen[REQUESTS] = max(seen[REQUESTS], deployment.rpm)
        self._frees_at[deployment.name] = now + wait

    def _over_limits(self, deployment, now: float, tokens: int) -> str | None:
        if not self.shared:
            return super()._over_limits(deployment, now, tokens)
        seen = self._seen.get(deployment.name)
        if seen is None:
            return None
        if deployment.rpm is not None and seen[REQUESTS] >= deployment.rpm:
            return QUOTA
        used = seen[TOKENS]
        if deployment.tpm is not None and used and used + tokens > deployment.tpm:
            return QUOTA
        return None

    def _add_waits(self, deployment, now: float, tokens: int, waits: list) -> None:
        if not self.shared:
            super()._add_waits(deployment, now, tokens, waits)
        elif self._over_limits(deployment, now, tokens) is not None:
            waits.append(max(0.0, self._frees_at.get(deployment.name, now) - now))

    def reserve(self, deployment, now: float, tokens: int) -> tuple | None:
        entry = super().reserve(deployment, now, tokens)
        if entry is not None and self.shared:  # counted here until the next snapshot counts it everywhere
            seen = self._seen.get(deployment.name)
            if seen is None:
                seen = self._seen[deployment.name] = [0, 0]
            seen[REQUESTS] += 1
            seen[TOKENS] += tokens
        return entry


class SharedShareBook(ShareBook):
    __slots__ = ("shared", "_seen")

    def __init__(self):
        super().__init__()
        self.shared = False
        self._seen: dict[str, dict[str, list]] = {}  # per group, per vendor: [requests, estimated USD]

    def load(self, seen: dict[str, dict[str, list]]) -> None:
        self._seen = seen
        self.shared = True

    def lose(self) -> None:
        self.shared = False
        self._seen = {}

    def amounts(self, group: str, policy, now: float) -> dict[str, float]:
        if not self.shared:
            return super().amounts(group, policy, now)
        field = TOKENS if policy.measure == "cost" else REQUESTS
        return {vendor: counts[field] for vendor, counts in self._seen.get(group, {}).items()}

    def record(self, group: str, vendor: str, now: float, cost: float) -> tuple:
        """Counted here until the next snapshot counts it everywhere. (A refund, for an attempt refused before it
        was sent, is not shared: the replicas keep it counted for the window, a rare and small overcount.)"""
        entry = super().record(group, vendor, now, cost)
        if self.shared:
            counts = self._seen.setdefault(group, {}).setdefault(vendor, [0, 0.0])
            counts[REQUESTS] += 1
            counts[TOKENS] += cost
        return entry
