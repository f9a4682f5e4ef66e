"""Who a request is: the key it presented, resolved to its record and team with one dict lookup by digest.

A Principal is built once per key when the configuration loads: what the key may use (its models and
residency narrowed by its team's), and every counter its requests touch (its own limits and its team's).
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import time
from typing import Any

from .. import errors
from ..state import GAUGE, PERIOD, WINDOW, Item
from . import periods

# What a counter counts, as indexes: a request's amounts are `(1, tokens, 1, cost)[metric]` for each counter.
REQUESTS, TOKENS, PARALLEL, USD = 0, 1, 2, 3
SEEN_MAX = 100_000  # presented keys remembered with their Principal (KeyBook.seen)


class Limit:
    """One counter a key's requests touch: `counter` is its state name (a budget's gets the period appended)."""

    __slots__ = ("owner", "counter", "metric", "kind", "limit", "period", "text")

    def __init__(self, owner: str, counter: str, metric: str, kind: str, limit: float, period: str | None = None):
        self.owner = owner  # "key 'ci-bot'" or "team 'research'": how refusals name it
        self.counter = counter
        self.metric = metric
        self.kind = kind
        self.limit = limit
        self.period = period
        self.text = str(int(limit))  # as the rate-limit headers show it


class Principal:
    """`items` are the state counters of `limits` (aligned), rebuilt only when a budget's period rolls over
    (`rolls_at`, 0: never): a request builds no counter of its own, only its amounts."""

    __slots__ = ("name", "team", "models", "residency", "expires_at", "role", "limits", "metadata", "metrics",
                 "items", "rolls_at", "per_minute", "amounts", "plan", "shown")

    def __init__(self, key: Any, team: Any | None):
        self.name = key.name
        self.team = key.team
        self.models = _narrowed(key.models, team.models if team is not None else None)
        self.residency = _narrowed(key.residency, team.residency if team is not None else None)
        self.expires_at = key.expires_at
        self.role = key.role
        self.metadata = key.metadata
        self.limits = tuple(_limits(f"key '{key.name}'", f"k:{key.name}:", key)
                            + (_limits(f"team '{team.name}'", f"t:{team.name}:", team) if team is not None else []))
        self.metrics = tuple(limit.metric for limit in self.limits)
        # A request's amounts for its counters, `(1, tokens, 1, cost)` picked by metric, in C (no comprehension).
        pick = operator.itemgetter(*self.metrics) if self.metrics else None
        self.amounts = pick if len(self.metrics) > 1 else (lambda values: (pick(values),)) if pick else tuple
        # For the rate-limit headers: ("requests" | "tokens", indexes of those limits), the units it has limits of.
        self.per_minute = tuple((unit, indexes) for unit, indexes in (
            ("requests", tuple(i for i, m in enumerate(self.metrics) if m == REQUESTS)),
            ("tokens", tuple(i for i, m in enumerate(self.metrics) if m == TOKENS))) if indexes)
        self.items: list[Item] = []
        self.plan: tuple | None = None  # the memory backend's cells of `items` (MemoryState.plan), made on first use
        self.shown: tuple | None = None  # (plan, the rate-limit headers' block for it): headers.py
        self.rolls_at = -1.0  # -1: not built yet (on first use); 0: never to rebuild; else when a period ends

    def roll(self, now: float) -> None:
        """The counters for the periods `now` is in (a new list: requests in flight keep the one they reserved)."""
        items, ends = [], []
        for limit in self.limits:
            if limit.metric == USD:
                period_id, reset_at = periods.current(limit.period, now)
                items.append(Item(limit.counter + period_id, limit.limit, PERIOD, reset_at))
                if reset_at:
                    ends.append(reset_at)
            else:
                items.append(Item(limit.counter, limit.limit, limit.kind))
        self.items = items
        self.plan = None
        self.rolls_at = min(ends) if ends else 0.0


def _narrowed(own: frozenset | None, team: frozenset | None) -> frozenset | None:
    """A key may use what both it and its team allow (None: no restriction at that level)."""
    if own is None:
        return team
    return own if team is None else own & team


def _limits(owner: str, prefix: str, record: Any) -> list[Limit]:
    found = []
    if record.rpm is not None:
        found.append(Limit(owner, prefix + "rpm", REQUESTS, WINDOW, record.rpm))
    if record.tpm is not None:
        found.append(Limit(owner, prefix + "tpm", TOKENS, WINDOW, record.tpm))
    if record.max_parallel is not None:
        found.append(Limit(owner, prefix + "parallel", PARALLEL, GAUGE, record.max_parallel))
    if record.budget is not None:
        found.append(Limit(owner, prefix + "usd:", USD, PERIOD, round(record.budget.usd * 1_000_000),
                           record.budget.period))
    return found


class KeyBook:
    """Every key the gateway accepts, each resolved with one SHA-256 of the presented key and dict lookups:
    declared keys by that digest, keys made through the admin API (`set_stored`) by its HMAC with the server
    secret. A lookup by digest compares no secret byte by byte, so its time says nothing about any key.
    `revoked` holds the names flagged in the shared state or revoked in the store (refreshed off the request
    path). `seen` maps a presented key string that resolved to its Principal: a client sends the same key on
    every request, so the digests are computed once per key, not once per request (only keys that resolved are
    kept, so its size is bounded by the keys there are; it is emptied whenever the stored keys change)."""

    def __init__(self, keys: dict[str, Any], teams: dict[str, Any]):
        self._by_digest = {bytes.fromhex(digest): Principal(key, teams.get(key.team))
                           for digest, key in keys.items()}
        self.seen: dict[str, Principal] = {}
        self._stored: dict[bytes, Principal] = {}
        self._secret = b""
        self.flagged: frozenset[str] = frozenset()  # `revoked:<name>` flags of the shared state
        self._revoked_stored: frozenset[str] = frozenset()
        self.revoked: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self._by_digest) or bool(self._stored)

    def principals(self) -> list[Principal]:
        """Every key's Principal, declared and made through the admin API."""
        return [*self._by_digest.values(), *self._stored.values()]

    def set_stored(self, secret: bytes, principals: dict[bytes, Principal], revoked: frozenset[str]) -> None:
        """The admin API's keys, replaced whole (a request in flight keeps the Principal it resolved)."""
        self._secret = secret
        self._stored = principals
        self.seen = {}  # a revised key (models, limits) is a new Principal
        self._revoked_stored = revoked
        self.revoked = self.flagged | revoked

    def set_flagged(self, names: frozenset[str]) -> None:
        self.flagged = names
        self.revoked = names | self._revoked_stored

    def resolve(self, key: str) -> Principal | None:
        """The key's principal; None when no key has this digest. Raises for an expired or revoked key."""
        principal = self.seen.get(key)
        if principal is None:
            principal = self._lookup(key)
            if principal is None:
                return None
        return self.usable(principal)

    def usable(self, principal: Principal) -> Principal:
        """The principal, unless its key has expired or been revoked (raises)."""
        if principal.expires_at is not None and time.time() >= principal.expires_at:
            raise errors.AuthenticationFailed(f"API key '{principal.name}' has expired")
        if self.revoked and principal.name in self.revoked:
            raise errors.AuthenticationFailed(f"API key '{principal.name}' has been revoked")
        return principal

    def _lookup(self, key: str) -> Principal | None:
        """The key's principal by its digests (remembered in `seen`); None when no key has them."""
        digest = hashlib.sha256(key.encode()).digest()
        principal = self._by_digest.get(digest)
        if principal is None:
            if not self._stored:
                return None
            principal = self._stored.get(hmac.digest(self._secret, digest, "sha256"))
            if principal is None:
                return None
        seen = self.seen
        if len(seen) >= SEEN_MAX:  # keys are few; this only bounds a churn of created and deleted ones
            seen.clear()
        seen[key] = principal
        return principal
