"""The many-replica backend: every counter in one Redis, each operation one Lua script call (one round trip).

When Redis cannot be reached the replica keeps serving on local counters, each limit cut to this replica's
share (the limit divided by the replicas last seen alive), says so once in the log and in `status()` (which
/health/ready reports), and goes back to the shared counters when Redis answers again. Budget spend settled
locally meanwhile is added to Redis then, once (the flush carries an idempotency token), so money spent during
an outage still counts. Window counters (rpm, tpm) are not carried over: they leave the window within a minute.

Each Redis data set carries an epoch key. The first replica to find it missing (a new Redis, or one restarted
without persistence) marks it as being seeded, seeds the budget counters from the ledger (`seeder`, the
governor's: governance/seeding.py) and then sets the epoch; the other replicas serve on local counters meanwhile.
A replica that sees the epoch change knows the counters it owed adjustments to are gone, and that the ledger's
seed holds what it settled locally during the outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..runtime import SHUTDOWN_WAIT_S, finish_within, stop_loop
from . import redis_scripts
from .base import PERIOD, WINDOW, Item, Reservation
from .memory import MemoryState

log = logging.getLogger("skyrelay.state")

HEARTBEAT_S = 1.0  # how often a replica says it is alive, and retries Redis while it is down
REPLICA_TTL_S = 5.0  # a replica not heard from for this long no longer counts in the local share
POOL_SIZE = 32  # connections to Redis per replica; more concurrent calls queue for one
POOL_WAIT_S = 5.0  # waiting for a free connection is this replica's congestion, not Redis being down
TIMEOUT_S = 1.0  # a Redis call slower than this counts as Redis being down (the request falls back, not waits)
EPOCH_KEY = "epoch"  # set once per Redis data set by the first replica to see it empty: who and when
SEEDING = "seeding:"  # the epoch's value while that replica seeds the budgets (the others wait on local counters)
SEEDING_S = 30  # a replica that dies while seeding leaves it to another after this
SEEDED = "+ledger"  # the end of an epoch whose budgets the ledger seeded
SEED_POLL_S = 0.05  # how often a replica waiting for another's seeding looks whether it is done
BIRTH_KEY = "birth:"  # + a budget counter added while the gateway runs: when it began counting (the first to ask)
SEEDED_KEY = "seeded:"  # + a budget counter: what the ledger's seeds added to it so far
_DOWN = (RedisError, OSError, asyncio.TimeoutError)


def _pool(url: str, socket_timeout: float | None) -> aioredis.BlockingConnectionPool:
    """No retries: a request falls back to local limits at the first failure instead of waiting out backoffs; the
    heartbeat is the retry. Bounded, so that a burst waits its turn for a connection (a reserve holds one for a
    round trip): redis-py's default pool refuses the 101st concurrent call, which would read as Redis being down."""
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, socket_connect_timeout=TIMEOUT_S,
        socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0), retry_on_timeout=False)


class RedisState:
    backend = "redis"

    def __init__(self, url: str, prefix: str = "skyrelay:", *, replica_id: str | None = None):
        self.prefix = prefix
        self.replica_id = replica_id or f"{os.getpid()}-{os.urandom(4).hex()}"
        self._redis = aioredis.Redis.from_pool(_pool(url, TIMEOUT_S))  # owns the pool: aclose closes it
        # The request's own calls (the reserve, and the settles after it) on connections without redis-py's socket
        # timeout, each under one asyncio.timeout of ours instead: with a socket timeout redis-py sends every
        # command through asyncio.wait_for, a task per send (17% of a call's instructions), and on Python 3.11
        # wait_for can swallow a cancel that lands as the send completes (runtime.stop_loop), here a client's
        # leaving. A timed-out call's connection is dropped by redis-py (it disconnects on any exception
        # mid-command), never reused half-read.
        self._hot = aioredis.Redis.from_pool(_pool(url, None))
        self._reserve = self._hot.register_script(redis_scripts.RESERVE)
        self._settle = self._hot.register_script(redis_scripts.SETTLE)
        self._flush = self._redis.register_script(redis_scripts.FLUSH)
        self._snapshot = self._redis.register_script(redis_scripts.SNAPSHOT)
        self._seed_counters = self._redis.register_script(redis_scripts.SEED)
        self._seed_one = self._redis.register_script(redis_scripts.SEED_ONE)
        # The governor's: (now, wait for this process's spool) -> {budget counter: (micro-dollars spent before now,
        # its expiry)}, from the ledger
        self.seeder: Callable[[float, bool], Awaitable[dict[str, tuple[float, float]]]] | None = None
        self._local = MemoryState()
        self.shared = True  # False while Redis is unreachable
        self.replicas = 1  # alive replicas last counted: the local fallback's divisor
        # PERIOD spend settled locally while down, by (counter, the second it was settled), to add when Redis is back
        self._pending: dict[tuple[str, int], float] = {}
        # PERIOD adjustments (real cost - estimate) of reservations held in Redis whose settle could not reach it:
        # added when Redis is back with its data, dropped when it came back empty (they adjust what it lost).
        self._owed: dict[str, float] = {}
        self.epoch: str | None = None  # this Redis's data generation (EPOCH_KEY), as last read
        self.epochs_lost = 0  # times Redis came back without its data (a restart without persistence)
        self._awaiting_seed = False  # another replica seeds an empty Redis: the heartbeat looks again sooner
        self._flushes = 0
        self._tasks: set[asyncio.Task] = set()
        self._batch: dict[int, tuple[list, list, list]] | None = None  # settles waiting for this turn's call
        self._heartbeat: asyncio.Task | None = None
        self._closing = False

    # --- the request path --------------------------------------------------------------------------------------

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        if self.shared:
            prefix = self.prefix
            args: list = [repr(now)]
            for item, amount in zip(items, amounts):
                args += (repr(float(amount)), repr(float(item.limit)), item.kind, repr(float(item.reset_at)))
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    answer = await self._reserve(keys=[prefix + item.name for item in items], args=args)
            except _DOWN as exc:
                self._went_down(exc)
            else:
                ok, value, refused = answer[0], answer[1], answer[2]
                if int(ok):
                    return Reservation(items, amounts, int(value), levels=[float(v) for v in answer[3::2]],
                                       oldest=[float(v) for v in answer[4::2]]), 0.0, -1
                return None, max(0.0, float(value)), int(refused) - 1
        return self._reserve_locally(items, amounts, now)

    def _reserve_locally(self, items: list[Item], amounts: list[float], now: float
                         ) -> tuple[Reservation | None, float, int]:
        share = self.replicas
        if share > 1:
            items_here = [Item(i.name, i.limit / share, i.kind, i.reset_at) for i in items]
        else:
            items_here = items
        reservation, wait, refused = self._local.reserve_now(items_here, amounts, now)
        if reservation is None:
            return None, wait, refused
        reservation.items = items  # settled against the real amounts, whatever share reserved them
        reservation.local = True
        return reservation, 0.0, -1

    def settle(self, reservation: Reservation, amounts: list[float], now: float) -> None:
        """Off the request path: the settles made in one turn of the event loop go to Redis together, one script
        call per bucket (a request's key and deployment counters, reserved together, settle together), in a task
        (`aclose` waits for the ones still running)."""
        if reservation.settled:
            return
        if reservation.local:
            self._local.settle(reservation, amounts, now)
            self._owe(reservation.items, amounts)
            return
        reservation.settled = True
        batch = None
        for item, reserved, amount in zip(reservation.items, reservation.amounts, amounts):
            delta = amount - reserved
            if not delta:
                continue
            if batch is None:
                batch = self._batch_for(reservation.marks)
            batch[0].append(self.prefix + item.name)
            batch[1].extend((repr(float(delta)), item.kind))
            if item.kind == PERIOD:  # owed to Redis if this settle cannot reach it
                batch[2].append((item.name, delta))

    def _batch_for(self, bucket: int) -> tuple[list, list, list]:
        """This turn's settles of reservations made in `bucket`: (keys, args, budget deltas)."""
        if self._batch is None:
            self._batch = {}
            task = asyncio.get_running_loop().create_task(self._settle_batch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch = self._batch.get(bucket)
        if batch is None:
            batch = self._batch[bucket] = ([], [str(bucket)], [])
        return batch

    async def _settle_batch(self) -> None:
        await asyncio.sleep(0)  # the rest of this turn's settles join the batch first
        batches, self._batch = self._batch, None
        for keys, args, owed in batches.values():
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    await self._settle(keys=keys, args=args)
            except _DOWN as exc:
                self._went_down(exc)
                for name, delta in owed:  # the budget part is owed
                    self._owed[name] = self._owed.get(name, 0.0) + delta

    def _owe(self, items: list[Item], amounts: list[float]) -> None:
        second = int(time.time())
        for item, amount in zip(items, amounts):
            if item.kind == PERIOD and amount:
                key = (item.name, second)
                self._pending[key] = self._pending.get(key, 0.0) + amount

    # --- reads and flags ---------------------------------------------------------------------------------------

    async def total(self, name: str, kind: str, now: float) -> float:
        key = self.prefix + name
        if kind == WINDOW:
            values = await self._redis.hgetall(key)
            horizon = int(now) - 60
            return sum(float(v) for s, v in values.items() if int(s) > horizon)
        value = await self._redis.get(key)
        return float(value) if value is not None else 0.0

    async def set_flag(self, name: str) -> None:
        await self._redis.sadd(self.prefix + "flags", name)

    async def clear_flag(self, name: str) -> None:
        await self._redis.srem(self.prefix + "flags", name)

    async def flags(self) -> set[str]:
        return {name.decode() for name in await self._redis.smembers(self.prefix + "flags")}

    # --- the routing snapshot and the breakers (off the request path) -------------------------------------------

    async def snapshot(self, counters: list[tuple[str, int, int]], breakers: str, now: float
                       ) -> tuple[list[float], list[float], dict[str, str]] | None:
        """Each counter's total and oldest counted second (`counters`: name, bucket seconds, buckets per window),
        and the `breakers` hash, in one script call; None while Redis is unreachable."""
        prefix = self.prefix
        args: list = [repr(now)]
        for _, bucket, buckets in counters:
            args += (bucket, buckets)
        try:
            answer = await self._snapshot(keys=[prefix + name for name, _, _ in counters] + [prefix + breakers],
                                          args=args)
        except _DOWN as exc:
            self._went_down(exc)
            return None
        count = 2 * len(counters)
        flat = [value.decode() for value in answer[count:]]
        return ([float(v) for v in answer[0:count:2]], [float(v) for v in answer[1:count:2]],
                dict(zip(flat[0::2], flat[1::2])))

    async def set_field(self, name: str, field: str, value: str | None, ttl_s: float = 0) -> bool:
        """Set (None: delete) one field of a small shared hash (the breakers), the hash kept for `ttl_s` after its
        last write; False when Redis is unreachable."""
        key = self.prefix + name
        try:
            if value is None:
                await self._redis.hdel(key, field)
                return True
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, field, value)
                pipe.expire(key, max(1, int(ttl_s)))
                await pipe.execute()
        except _DOWN as exc:
            self._went_down(exc)
            return False
        return True

    # --- outage and recovery -----------------------------------------------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        if self.shared:
            self.shared = False
            log.warning("redis unreachable (%s): serving on local limits, this replica's 1/%d share of each",
                        type(exc).__name__, self.replicas,
                        extra={"event": "redis_fallback", "error": type(exc).__name__, "replicas": self.replicas})

    async def check(self) -> None:
        """One heartbeat: count the replicas alive, or (while down) see whether Redis is back and reconcile."""
        now = time.time()
        replicas = self.prefix + "replicas"
        try:
            if not self.shared:  # the pool's idle connections may be to a Redis that went away: reconnect them all
                await self._redis.connection_pool.disconnect()
                await self._hot.connection_pool.disconnect()
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(replicas, {self.replica_id: now})
                pipe.zremrangebyscore(replicas, "-inf", now - REPLICA_TTL_S)
                pipe.zcard(replicas)
                tag = f"{self.replica_id}@{now:.3f}"
                pipe.set(self.prefix + EPOCH_KEY, SEEDING + tag, nx=True, ex=SEEDING_S)
                pipe.get(self.prefix + EPOCH_KEY)
                _, _, count, created, epoch = await pipe.execute()
            self.replicas = max(1, int(count))
            epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
            self._awaiting_seed = False
            if created:  # no data here: this replica seeds the budgets, the others wait on local counters
                before, self._pending = self._pending, {}  # settled before the seed's moment: its figures have them
                epoch = await self._seed(tag, now, bool(before))
                if not epoch.endswith(SEEDED):  # not seeded after all: added as on any recovery
                    _add(self._pending, before)
            elif epoch is not None and epoch.startswith(SEEDING):
                self._await_seed()
                return
            self._read_epoch(epoch)
            # Also while shared: a reservation made on the local counters during the outage and settled after
            # Redis came back owes its spend too (it waited for the next outage, or was lost at shutdown).
            if not self.shared or self._pending or self._owed:
                await self._reconcile()
        except _DOWN as exc:
            self._went_down(exc)
            return
        if not self.shared:
            self.shared = True
            log.warning("redis reachable again: limits and budgets are shared across replicas again",
                        extra={"event": "redis_recovered", "replicas": self.replicas})

    async def _seed(self, tag: str, now: float, settled_here: bool) -> str:
        """Seed the budget counters of an empty Redis with what the ledger holds from before `now` (`seeder`, the
        governor's; `settled_here`: this replica has outage spend of its own, which the seed must hold), then set
        the epoch: its value says whether the ledger seeded them (SEEDED)."""
        seeds: dict[str, tuple[float, float]] = {}
        source = ""
        if self.seeder is not None:
            try:
                seeds = await self.seeder(now, settled_here)
                source = SEEDED
            except Exception as exc:  # noqa: BLE001  (the database down: budgets count from zero, as before)
                log.warning("budgets: cannot read the ledger to seed an empty Redis (%s); they count from zero",
                            type(exc).__name__)
        keys, args = [self.prefix + EPOCH_KEY], [tag + source]
        for name, (amount, expiry) in seeds.items():
            keys += (self.prefix + name, self.prefix + SEEDED_KEY + name)
            args += (repr(float(amount)), repr(float(expiry)))
        await self._seed_counters(keys=keys, args=args)
        if source:
            log.info("budgets: %d counters of an empty Redis seeded with the ledger's spend before %.3f", len(seeds),
                     now, extra={"event": "budgets_seeded", "seeded": len(seeds)})
        return tag + source

    async def birth(self, name: str, expiry: float = 0.0) -> float:
        """When the budget counter `name` began counting: the time the first replica to ask gave (a budget added
        while the gateway runs: governance/seeding.py), so that every replica seeds it for the same moment; kept
        until `expiry` (the counter's, epoch seconds; 0: for ever). Raises while Redis is unreachable."""
        key = self.prefix + BIRTH_KEY + name
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, repr(time.time()), nx=True, exat=int(expiry) if expiry else None)
            pipe.get(key)
            _, born = await pipe.execute()
        return float(born)

    async def seed_budget(self, name: str, spent: float, expiry: float) -> None:
        """Seed one budget counter with `spent` (micro-dollars), convergent across replicas (SEED_ONE)."""
        await self._seed_one(keys=[self.prefix + name, self.prefix + SEEDED_KEY + name],
                             args=[repr(float(spent)), repr(float(expiry))])

    def _await_seed(self) -> None:
        """Another replica is seeding an empty Redis: serve on local counters until its epoch is set (looked at
        every SEED_POLL_S meanwhile)."""
        self._awaiting_seed = True
        if self.shared:
            self.shared = False
            log.warning("redis is being seeded by another replica: serving on local limits until it is done",
                        extra={"event": "redis_seeding"})

    def _read_epoch(self, epoch: str | None) -> None:
        """A data generation other than the one seen before: this Redis lost every counter since (it restarted
        without persistence, or was flushed). Said once per loss; the adjustments owed to the lost counters go."""
        known, self.epoch = self.epoch, epoch
        if known is None or epoch == known:
            return
        self.epochs_lost += 1
        self._owed.clear()
        seeded = epoch is not None and epoch.endswith(SEEDED)
        if seeded:  # the ledger's seed holds what was settled before it; the second it began is kept (counted
            born = int(float(epoch[:-len(SEEDED)].rpartition("@")[2]))  # twice rather than not at all)
            self._pending = {key: usd for key, usd in self._pending.items() if key[1] >= born}
        log.warning("redis came back without its data (restarted without persistence, or flushed): rates count "
                    "from zero there, budgets %s", "were seeded from the ledger" if seeded else "too",
                    extra={"event": "redis_data_lost", "epochs_lost": self.epochs_lost})

    async def _reconcile(self) -> None:
        if not self._pending and not self._owed:
            return
        owed, kept = self._owed, self._pending
        self._owed, self._pending = {}, {}
        pending = dict(owed)  # the same data as before the outage: the reservations they adjust are there
        for (name, _), usd in kept.items():
            pending[name] = pending.get(name, 0.0) + usd
        self._flushes += 1
        token = f"{self.prefix}flush:{self.replica_id}:{self._flushes}"
        names = list(pending)
        keys = [token, *(self.prefix + name for name in names)]
        args = ["", *(repr(pending[name]) for name in names)]
        for attempt in range(3):  # an answer lost in transit is re-sent under the same token: added once
            try:
                await self._flush(keys=keys, args=args)
                return
            except _DOWN:
                if attempt == 2:  # still owed, with what was settled meanwhile
                    _add(self._pending, kept)
                    _add(self._owed, owed)
                    raise

    def start(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while not self._closing:  # as well as on its cancel (runtime.stop_loop says why)
            await self.check()
            await asyncio.sleep(SEED_POLL_S if self._awaiting_seed else HEARTBEAT_S)

    async def aclose(self) -> None:
        self._closing = True
        await stop_loop(self._heartbeat, "heartbeat", log)
        self._heartbeat = None
        await finish_within(self._tasks, "settle(s) to Redis", log)
        if self.shared and (self._pending or self._owed):  # the outage spend settled since the last heartbeat
            try:
                await asyncio.wait_for(self._reconcile(), SHUTDOWN_WAIT_S)
            except _DOWN:
                log.warning("shutdown: the spend owed to Redis since its outage could not be added")
        try:  # the others stop counting this replica in their local shares at once
            await asyncio.wait_for(self._redis.zrem(self.prefix + "replicas", self.replica_id), SHUTDOWN_WAIT_S)
        except _DOWN:
            pass
        try:
            await asyncio.wait_for(asyncio.gather(self._redis.aclose(), self._hot.aclose()), SHUTDOWN_WAIT_S)
        except _DOWN:
            log.warning("shutdown: closing the Redis connections took over %g s; left to the process's exit",
                        SHUTDOWN_WAIT_S)

    def status(self) -> dict:
        return {"backend": "redis", "shared": self.shared, "replicas": self.replicas, "data_lost": self.epochs_lost}


def _add(into: dict, amounts: dict) -> None:
    """Add `amounts` to the sums in `into`, key by key."""
    for key, amount in amounts.items():
        into[key] = into.get(key, 0.0) + amount
