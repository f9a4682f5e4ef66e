"""Routing state shared by every replica on one Redis: deployment quotas, vendor shares, breakers.

With `state.backend: redis` the dispatcher's books are routing/shared.py's, and this module does their I/O:

- Reserve (the request path): before an attempt is sent, its deployment's rpm and tpm counters (and, in a capped
  group, its vendor's tally) are reserved in Redis, all or nothing, in the same script call as the key's and
  team's counters when this is the request's first reservation: one round trip per request. A refusal by the
  deployment's counters moves the dispatcher to the next candidate (one more round trip, only then); a refusal by
  the key's raises the key's 429 as before.
- Settle (off the request path): the tokens the cloud reported replace the estimate (a task, as the key's).
- Snapshot (off the request path, every REFRESH_S): every deployment's window totals, every capped group's
  vendor tallies and the shared breakers, in one script call, loaded into the books the planner reads.
- Breakers: a breaker this replica opens or closes is written to a shared hash (its open-until time on the wall
  clock); the others adopt it at their next snapshot. Only breaker verdicts travel, never a single request's.

Redis unreachable: the state backend reserves on its local fallback at this replica's share of every counter
(the deployments' included), the books answer from this replica's own attempts, breakers stay local; when Redis
answers again the snapshot resumes and the breakers this replica changed meanwhile are written again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Callable

from .routing.policies import estimated_cost
from .runtime import finish_within, stop_loop
from .routing.shared import SharedQuotaBook, SharedShareBook
from .state import WINDOW, Item
from .state.base import TALLY, Reservation, split

log = logging.getLogger("skyrelay.dispatch")

REFRESH_S = 0.2  # how stale the planner's view of the other replicas' counts and breakers may be
BREAKERS = "breakers"  # the shared hash: deployment name -> "open_until_wall cooldown"
TALLY_BUCKETS = 60  # a vendor tally's window is counted in at most this many buckets
REFUSED = object()  # what `reserve` answers when the deployment's shared quota has no room


def shared_books() -> dict:
    """The dispatcher's books for a replica that shares its routing state (Dispatcher keyword arguments)."""
    return {"quotas": SharedQuotaBook(), "shares": SharedShareBook()}


class SharedRouting:
    def __init__(self, state: Any, dispatcher: Any, governor: Any, wall: Callable[[], float] = time.time):
        self.state = state
        self.dispatcher = dispatcher
        self.governor = governor
        self.wall = wall
        self.quotas = dispatcher.quotas  # routing.shared.SharedQuotaBook
        self.shares = dispatcher.shares  # routing.shared.SharedShareBook
        dispatcher.health.on_change = self._breaker_changed
        self._published: dict[str, str | None] = {}  # breakers this replica wrote last (None: closed)
        self._unsent: set[str] = set()  # breaker changes a Redis outage kept from being written
        self._open_seen: set[str] = set()  # the shared hash's names at the last snapshot
        self._tasks: set[asyncio.Task] = set()
        self._refresher: asyncio.Task | None = None
        self._closing = False
        self.configure(dispatcher.groups)

    def configure(self, groups: Any) -> None:
        """The shared counters of these groups' deployments and capped vendors (again after a reload)."""
        items: dict[str, tuple[Item, ...]] = {}
        tallies: dict[tuple[str, str], tuple[Item, Any]] = {}
        tpm: set[str] = set()
        for group in groups.values():
            policy = group.concentration
            for deployment in group.deployments:
                own = []
                if deployment.rpm is not None:
                    own.append(Item(f"d:{deployment.name}:rpm", deployment.rpm, WINDOW))
                if deployment.tpm is not None:
                    own.append(Item(f"d:{deployment.name}:tpm", deployment.tpm, WINDOW))
                    tpm.add(own[-1].name)
                if own:
                    items[deployment.name] = tuple(own)
                if policy is not None:
                    bucket = max(1, math.ceil(policy.window_s / TALLY_BUCKETS))
                    name = f"v:{group.name}:{deployment.vendor}:{policy.measure}"
                    tallies[(group.name, deployment.vendor)] = (Item(name, math.inf, TALLY, bucket), policy)
        self._items, self._tallies, self._tpm = items, tallies, tpm
        # What a snapshot reads: (counter, bucket seconds, buckets), and what each answer goes to.
        self._counters = [(item.name, 1, 60) for own in items.values() for item in own]
        self._owners = [(name, item.name in tpm) for name, own in items.items() for item in own]
        self._counters += [(item.name, int(item.reset_at), math.ceil(policy.window_s / item.reset_at))
                           for item, policy in tallies.values()]
        self._tally_owners = [(key, policy.measure == "cost") for key, (_, policy) in tallies.items()]

    # --- the request path --------------------------------------------------------------------------------------

    async def reserve(self, deployment: Any, tokens: int, ctx: Any):
        """The attempt's shared counters, with the key's when not yet reserved: the deployment's part of the
        reservation (None when it has no shared counter), or REFUSED. Raises the key's refusal."""
        own = self._items.get(deployment.name, ())
        tally = self._tallies.get((deployment.group, deployment.vendor))
        admission = ctx.admission
        pending = admission is not None and admission.reservation is None
        if not own and tally is None and not pending:
            return None
        items = list(own)
        amounts = [tokens if item.name in self._tpm else 1 for item in own]
        if tally is not None:
            items.append(tally[0])
            amounts.append(self._share_amount(deployment, tally[1], ctx))
        if pending:
            items = admission.items + items
            amounts = [*admission.amounts, *amounts]
        reservation, wait, refused = await self.state.reserve(items, amounts, self.wall())
        keys = len(admission.items) if pending else 0
        if reservation is None:
            if refused < keys:
                self.governor.refuse(ctx, admission.items, admission.values, refused, wait)
            now = self.dispatcher.clock()
            self.quotas.mark_full(deployment, items[refused].name in self._tpm, now, wait)
            return REFUSED
        if pending:
            admission.reservation, reservation = split(reservation, keys)
        return reservation if reservation.items else None

    def count_later(self, deployment: Any, tokens: int, ctx: Any, attempt: Any) -> None:
        """A hedged group's attempt, already sent: counted in the shared counters without waiting (the planner's
        snapshot kept it within quota; a refusal there now means another replica took the last room first)."""
        task = asyncio.get_running_loop().create_task(self._count(deployment, tokens, ctx, attempt))
        self._keep(task)

    async def _count(self, deployment: Any, tokens: int, ctx: Any, attempt: Any) -> None:
        try:
            held = await self.reserve(deployment, tokens, ctx)
        except Exception:  # noqa: BLE001 - the key's refusal: too late to refuse a request already sent
            return
        if isinstance(held, Reservation):
            attempt.held = held

    def settle(self, held: Reservation, sent: bool, used_tokens: int | None) -> None:
        """The attempt ended: nothing if it was never sent, else one request and the tokens the cloud reported
        (the estimate without a report). A vendor tally keeps what it counted."""
        amounts = []
        for item, reserved in zip(held.items, held.amounts):
            if item.kind == TALLY:
                amounts.append(reserved)
            elif not sent:
                amounts.append(0)
            elif item.name in self._tpm and used_tokens is not None:
                amounts.append(used_tokens)
            else:
                amounts.append(reserved)
        self.state.settle(held, amounts, self.wall())

    def _share_amount(self, deployment: Any, policy: Any, ctx: Any) -> float:
        if policy.measure != "cost":
            return 1
        quotas = self.dispatcher.quotas
        return estimated_cost(deployment, quotas.input_tokens(deployment, ctx.body_bytes), ctx.max_output)

    # --- the snapshot (off the request path) -------------------------------------------------------------------

    def start(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while not self._closing:  # as well as on its cancel (runtime.stop_loop says why)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - a bug here must not stop the refreshes; the next one tries again
                log.exception("routing snapshot failed")
            await asyncio.sleep(REFRESH_S)

    async def refresh(self) -> None:
        """Read every shared count and breaker once, into the books the planner reads."""
        wall, now = self.wall(), self.dispatcher.clock()
        snapshot = await self.state.snapshot(self._counters, BREAKERS, wall)
        if snapshot is None:  # Redis unreachable (the state backend logged it once)
            self.quotas.lose()
            self.shares.lose()
            return
        totals, oldest, breakers = snapshot
        seen: dict[str, list] = {}
        frees_at: dict[str, float] = {}
        for (name, is_tpm), total, first in zip(self._owners, totals, oldest):
            seen.setdefault(name, [0, 0])[1 if is_tpm else 0] = total
            if first:  # when the oldest counted second leaves the minute, on this book's clock
                frees_at[name] = min(frees_at.get(name, math.inf), first + 60 - wall + now)
        shares: dict[str, dict[str, list]] = {}
        count = len(self._owners)
        for ((group, vendor), by_cost), total in zip(self._tally_owners, totals[count:]):
            shares.setdefault(group, {})[vendor] = [0, total] if by_cost else [total, 0.0]
        self.quotas.load(seen, frees_at)
        self.shares.load(shares)
        self._adopt(breakers, wall, now)
        if self._unsent:
            for name in list(self._unsent):
                self._write(name, self._published.get(name))

    # --- breakers ----------------------------------------------------------------------------------------------

    def _adopt(self, breakers: dict[str, str], wall: float, now: float) -> None:
        """Another replica's breaker verdicts: open here what it opened, close what it closed."""
        health = self.dispatcher.health
        for name, value in breakers.items():
            if self._published.get(name) == value:
                continue  # this replica's own
            until, cooldown = (float(part) for part in value.split())
            if until > wall:
                health.adopt(name, until - wall + now, cooldown)
        for name in self._open_seen.difference(breakers):
            if name not in self._unsent:  # closed by another replica (not this one's write still on its way)
                self._published.pop(name, None)
                health.release(name, now)
        self._open_seen = set(breakers)

    def _breaker_changed(self, name: str, open_until: float, cooldown: float) -> None:
        """This replica opened (cooldown > 0) or closed a breaker: tell the others."""
        value = None
        if cooldown > 0:
            value = f"{open_until - self.dispatcher.clock() + self.wall():.3f} {cooldown}"
        self._published[name] = value
        self._write(name, value)

    def _write(self, name: str, value: str | None) -> None:
        self._unsent.add(name)
        self._keep(asyncio.get_running_loop().create_task(self._send(name, value)))

    async def _send(self, name: str, value: str | None) -> None:
        ttl = 2 * self.dispatcher.health.policy.max_cooldown + 60  # no replica left to close it: forgotten
        if not await self.state.set_field(BREAKERS, name, value, ttl):
            return  # still unsent: written again after the next snapshot that reaches Redis
        if self._published.get(name) == value:
            self._unsent.discard(name)

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        self._closing = True
        await stop_loop(self._refresher, "routing snapshot", log)
        self._refresher = None
        await finish_within(self._tasks, "shared routing write(s)", log)
