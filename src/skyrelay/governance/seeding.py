"""Budgets that survive a restart: counters that begin empty are seeded with what the ledger says was spent.

The memory backend's counters live in the gateway's process (in the supervisor's with `--workers`), so a restart
began every budget at zero again. The ledger has every dollar, so once this process has committed the spools its
dead predecessors left (the shipper's `adopted`), each budget counter of the current periods is seeded with the cost
(as budgets count it) of the attempts that began in its period before the counters were born (`birth`): what began
later is counted by the counters themselves, so nothing is counted twice. Seeding runs off the request path, a few
hundred milliseconds after the first request can arrive; until then a budget counts only the new spend. Workers each
seed after their own adoption and the state keeps the largest figure per counter (MemoryState.seed), which is the
complete one: the last worker to finish its adoption read after every other one's.

Redis-backed counters outlive the gateway; when Redis comes back without its data (or is new), the replica that
finds it empty seeds its budget counters the same way, before any replica counts there again (state/redis.py).

A budget added while the gateway runs (through the admin API: a key or team given one, or another period) has a
new counter, seeded the same way with what its owner spent in its period before the counter's own birth: the
moment the first worker or replica to learn of the budget asked the state for it, so every one that learns of it
later seeds it for that same moment, and the state keeps the largest figure (seed_added).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from functools import partial
from typing import Any, Awaitable, Callable

from ..ledger.reports import spent_by_owner
from ..ledger.store import LedgerStore
from ..state.base import PERIOD_KEPT_S
from . import periods
from .principals import USD

log = logging.getLogger("skyrelay.governance")

ADOPTION_POLL_S = 0.05  # how often the seeder looks whether the shipper has committed the adopted spools
RETRY_S = 5.0  # between tries while the database does not answer
ADOPTION_WAIT_S = 2.0  # how long seeding waits for this process's spool to be shipped (an empty Redis, a new budget)


def budget_counters(principals: list[Any], now: float) -> dict[str, tuple[bool, str, float, float]]:
    """Counter name -> (a team's, its owner's name, its period's start, its end or 0) of every budget the keys
    count at `now`."""
    found: dict[str, tuple[bool, str, float, float]] = {}
    for principal in principals:
        for limit in principal.limits:
            if limit.metric != USD:
                continue
            period_id, reset_at = periods.current(limit.period, now)
            team = limit.counter.startswith("t:")
            found[limit.counter + period_id] = (team, principal.team if team else principal.name,
                                                periods.started(limit.period, now), reset_at)
    return found


def added_counters(before: list[Any], after: list[Any], now: float) -> dict[str, tuple[bool, str, float, float]]:
    """budget_counters of the keys `after` that those `before` did not count (both read at `now`, so a period that
    rolls over in between is no new budget)."""
    known = budget_counters(before, now)
    return {name: meta for name, meta in budget_counters(after, now).items() if name not in known}


def seeds(counters: dict[str, tuple[bool, str, float, float]], store: LedgerStore, born: float,
          prices: dict[str, Any]) -> dict[str, int]:
    """Micro-dollars per counter: what its owner spent from its period's start until `born` (blocking: a thread).
    Budgets count a deployment's list cost less its `discount` (`prices`: by deployment), not what a commitment
    covers of it, so that is what is summed; a deployment no longer configured counts its billed cost."""
    spent: dict[float, tuple[dict[str, float], dict[str, float]]] = {}
    out = {}
    for name, (team, owner, start, _) in counters.items():
        if start >= born:  # the period began after the counters did: they saw all of it
            continue
        if start not in spent:
            spent[start] = _by_owner(spent_by_owner(store, start, born), prices)
        usd = spent[start][1 if team else 0].get(owner, 0.0)
        if usd > 0:
            out[name] = math.ceil(usd * 1_000_000 - 1e-6)  # budgets count whole micro-dollars
    return out


def _by_owner(rows: list[tuple], prices: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    by_key: dict[str, float] = {}
    by_team: dict[str, float] = {}
    for key, team, deployment, listed, billed in rows:
        price = prices.get(deployment)
        usd = float(listed or 0) * (1.0 - price.discount) if price is not None else float(billed or 0)
        if key is not None:
            by_key[key] = by_key.get(key, 0.0) + usd
        if team is not None:
            by_team[team] = by_team.get(team, 0.0) + usd
    return by_key, by_team


async def seed_budgets(governor: Any, adopted: Any, database: Any) -> int:
    """Seed the governor's budget counters once `adopted` (a threading.Event) is set; the counters seeded."""
    state = governor.state
    born = await state.birth()
    if born is None:  # the supervisor's counters out of reach (it is restarting): not seeded
        return 0
    await _polled(adopted.is_set)
    counters, found = await _retried(lambda: _spent_before(governor, database, born, time.time()),
                                     "read the ledger to seed them")
    if not counters:
        return 0
    for name, amount in found.items():
        state.seed(name, amount, _expiry(counters[name][3]))
    log.info("budgets: %d of %d counters seeded with the ledger's spend before this start", len(found),
             len(counters), extra={"event": "budgets_seeded", "seeded": len(found)})
    return len(found)


async def redis_seeds(governor: Any, shipper: Any, database: Any, born: float,
                      settled_here: bool = False) -> dict[str, tuple[int, float]]:
    """RedisState.seeder: the replica that finds Redis empty (restarted without persistence, or new) asks for each
    budget counter's spend before `born` and its expiry (as the reserve script sets it). With `settled_here` (it
    served on local counters during the outage), once its shipper has committed what it spooled before `born`, so
    that its outage spend is in the seed exactly, waiting up to ADOPTION_WAIT_S for it (the others serve on local
    counters meanwhile)."""
    await _polled(lambda: shipper.adopted.is_set() and not (settled_here and shipper.caught_up_at < born),
                  ADOPTION_WAIT_S)
    counters, found = await _spent_before(governor, database, born, born)
    return {name: (amount, _expiry(counters[name][3])) for name, amount in found.items()}


async def _spent_before(governor: Any, database: Any, born: float, now: float) -> tuple[dict, dict[str, int]]:
    """The budget counters the keys count at `now`, and each one's spend before `born` (read in a thread)."""
    counters = budget_counters(governor.keys.principals(), now)
    if not counters:
        return counters, {}
    return counters, await asyncio.to_thread(_read, counters, database, born, dict(governor.served_prices))


def _read(counters: dict, database: Any, born: float, prices: dict[str, Any]) -> dict[str, int]:
    with LedgerStore(database, create=False) as store:
        return seeds(counters, store, born, prices)


async def seed_added(governor: Any, counters: dict[str, tuple[bool, str, float, float]], shipper: Any,
                     database: Any) -> int:
    """Seed the counters of budgets added while the gateway runs (added_counters), each with its owner's spend in
    its period before the counter's birth (state.birth: the same moment for every worker and replica), once this
    process's shipper has committed what it spooled before then. Requests in flight when the budget appeared, and a
    replica's in the moments before it learned of it, are counted by neither (as at a restart). A state or database
    that does not answer is tried again until the period ends. The counters seeded."""
    seeded = 0
    for name, meta in counters.items():
        seeded += await _retried(partial(_seed_one, governor, name, meta, shipper, database),
                                 f"seed the budget counter {name} added while running", meta[3] or math.inf) or 0
    return seeded


async def _seed_one(governor: Any, name: str, meta: tuple, shipper: Any, database: Any) -> int:
    state = governor.state
    expiry = _expiry(meta[3])
    born = await state.birth(name, expiry)
    if born is None:
        raise ConnectionError("the state's counters are unreachable")
    if meta[2] >= born:  # its period began after the counter did: it saw all of it
        return 0
    await _polled(lambda: shipper.caught_up_at >= born, ADOPTION_WAIT_S)
    found = await asyncio.to_thread(_read, {name: meta}, database, born, dict(governor.served_prices))
    if name not in found:
        return 0
    await state.seed_budget(name, found[name], expiry)
    log.info("budgets: the budget counter %s, added while running, seeded with $%.6f spent before it began", name,
             found[name] / 1_000_000, extra={"event": "budget_seeded", "counter": name})
    return 1


def _expiry(end: float) -> float:
    """A budget counter's expiry (epoch seconds; 0: none) from its period's end, as the reserve script sets it."""
    return end + PERIOD_KEPT_S if end else 0.0


async def _polled(ready: Callable[[], bool], seconds: float = math.inf) -> None:
    """Until `ready()` (looked at every ADOPTION_POLL_S), `seconds` at most."""
    deadline = time.monotonic() + seconds
    while not ready() and time.monotonic() < deadline:
        await asyncio.sleep(ADOPTION_POLL_S)


async def _retried(attempt: Callable[[], Awaitable[Any]], failing: str, until: float = math.inf) -> Any:
    """What `attempt()` returns, tried again every RETRY_S while it raises (the database or the state away: the
    ledger keeps the spend), said once as "cannot `failing`"; None once `until` (epoch seconds) has passed."""
    warned = False
    while time.time() < until:
        try:
            return await attempt()
        except Exception as exc:  # noqa: BLE001
            if not warned:
                log.warning("budgets: cannot %s (%s); retrying every %g s", failing, type(exc).__name__, RETRY_S)
                warned = True
            await asyncio.sleep(RETRY_S)
    return None
