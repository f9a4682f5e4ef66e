"""The state backends, one set of cases run on each: the memory backend, the supervisor's state process as a
worker of `serve --workers N` reaches it (state/local.py), and Redis (skipped when Redis is not running). Limits are never passed, all or nothing, settle replaces, concurrent reserves stay within a limit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from skyrelay.state import GAUGE, PERIOD, WINDOW, Item, MemoryState
from skyrelay.state.local import SocketState, StateServer
from skyrelay.state import redis as redis_backend
from skyrelay.state.redis import RedisState
from tests.support.redis_service import (REDIS_URL, RedisRelay, delete_prefix, needs_redis, fresh_prefix)

NOW = 1_800_000_000.0  # a fixed wall clock: windows and periods move only when a test moves it


@pytest.fixture(params=["memory", "local", pytest.param("redis", marks=needs_redis)])
async def state(request, tmp_path):
    if request.param == "memory":
        yield MemoryState()
        return
    if request.param == "local":
        server = StateServer(str(tmp_path / "state.sock"))
        await server.start()
        worker = SocketState(server.path, workers=2)
        assert await worker.connect()
        worker.start()
        yield worker
        await worker.aclose()
        await server.close()
        return
    prefix = fresh_prefix()
    backend = RedisState(REDIS_URL, prefix)
    yield backend
    await backend.aclose()
    await delete_prefix(prefix)


def it(name: str, amount: float, limit: float, kind: str, reset_at: float = 0.0) -> tuple[Item, float]:
    """A counter and the amount one reserve adds to it."""
    return Item(name, limit, kind, reset_at), amount


async def reserve(state, specs: list[tuple[Item, float]], now: float):
    return await state.reserve([item for item, _ in specs], [amount for _, amount in specs], now)


async def settled(state) -> None:
    """A Redis settle runs as a task: let it land before reading."""
    tasks = getattr(state, "_tasks", ())
    if tasks:
        await asyncio.gather(*tasks)


async def test_a_window_admits_up_to_its_limit_then_says_when_room_returns(state):
    rpm = it("k:rpm", 1, 3, WINDOW)
    for offset in range(3):
        reservation, wait, _ = await reserve(state, [rpm], NOW + offset)
        assert reservation is not None and wait == 0
    reservation, wait, _ = await reserve(state, [rpm], NOW + 10)
    assert reservation is None
    assert wait == pytest.approx(50.0)  # the first one, reserved at NOW, leaves the window at NOW + 60
    reservation, *_ = await reserve(state, [rpm], NOW + 60)
    assert reservation is not None
    assert await state.total("k:rpm", WINDOW, NOW + 60) == 3


async def test_an_empty_window_lets_one_request_larger_than_the_limit_through(state):
    tpm = it("k:tpm", 5000, 1000, WINDOW)
    assert (await reserve(state, [tpm], NOW))[0] is not None
    assert (await reserve(state, [it("k:tpm", 1, 1000, WINDOW)], NOW))[0] is None


async def test_reserve_is_all_or_nothing(state):
    await reserve(state, [it("full", 1, 1, WINDOW)], NOW)
    items = [it("free", 1, 10, WINDOW), it("budget", 0.5, 10, PERIOD, NOW + 100), it("full", 1, 1, WINDOW)]
    reservation, wait, refused = await reserve(state, items, NOW)
    assert reservation is None and wait > 0 and refused == 2  # which counter refused, for the error message
    assert await state.total("free", WINDOW, NOW) == 0
    assert await state.total("budget", PERIOD, NOW) == 0


async def test_a_budget_refuses_until_its_period_ends(state):
    budget = it("k:usd:day1", 0.6, 1.0, PERIOD, NOW + 3600)
    assert (await reserve(state, [budget], NOW))[0] is not None
    reservation, wait, _ = await reserve(state, [budget], NOW + 600)
    assert reservation is None and wait == pytest.approx(3000.0)


async def test_settle_replaces_the_estimate_with_the_real_amount(state):
    budget = it("k:usd", 0.6, 1.0, PERIOD, NOW + 3600)
    tpm = it("k:tpm", 800, 1000, WINDOW)
    reservation, *_ = await reserve(state, [budget, tpm], NOW)
    state.settle(reservation, [0.1, 100], NOW + 1)
    state.settle(reservation, [0.5, 900], NOW + 1)  # a second settle does nothing
    await settled(state)
    assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.1)
    assert await state.total("k:tpm", WINDOW, NOW + 1) == pytest.approx(100)
    assert (await reserve(state, [budget, tpm], NOW + 2))[0] is not None


async def test_a_refund_frees_everything_and_a_gauge_counts_what_is_in_flight(state):
    parallel = it("k:parallel", 1, 2, GAUGE)
    first, *_ = await reserve(state, [parallel], NOW)
    await reserve(state, [parallel], NOW)
    reservation, wait, _ = await reserve(state, [parallel], NOW)
    assert reservation is None and wait == 1.0
    state.settle(first, [0], NOW)
    await settled(state)
    assert (await reserve(state, [parallel], NOW))[0] is not None


async def test_a_settle_after_its_window_passed_changes_nothing(state):
    tpm = it("k:tpm", 500, 1000, WINDOW)
    reservation, *_ = await reserve(state, [tpm], NOW)
    await reserve(state, [it("k:tpm", 100, 1000, WINDOW)], NOW + 30)
    state.settle(reservation, [900], NOW + 61)
    await settled(state)
    assert await state.total("k:tpm", WINDOW, NOW + 61) == 100


async def test_a_settle_after_its_entry_left_the_window_changes_nothing(state):
    reservation, *_ = await reserve(state, [it("k:tpm", 500, 1000, WINDOW)], NOW)
    await reserve(state, [it("k:tpm", 100, 1000, WINDOW)], NOW + 61)  # the first one's second leaves the minute
    state.settle(reservation, [900], NOW + 62)
    await settled(state)
    assert await state.total("k:tpm", WINDOW, NOW + 62) == 100


async def test_many_concurrent_reserves_never_pass_a_limit(state):
    # Money in micro-dollars, as governance counts it: integers add up exactly.
    items = [it("k:rpm", 1, 1000, WINDOW), it("t:usd", 100_000, 2_000_000, PERIOD, NOW + 3600)]
    results = await asyncio.gather(*(reserve(state, items, NOW) for _ in range(60)))
    assert sum(reservation is not None for reservation, *_ in results) == 20  # 20 x $0.10 = the $2.00 budget
    assert await state.total("t:usd", PERIOD, NOW) == 2_000_000


async def test_flags_are_set_read_and_cleared(state):
    await state.set_flag("revoked:bot")
    assert "revoked:bot" in await state.flags()
    await state.clear_flag("revoked:bot")
    assert "revoked:bot" not in await state.flags()


# --- Redis only: two replicas, outage and recovery ------------------------------------------------------------


@pytest.fixture
async def prefix():
    value = fresh_prefix()
    yield value
    await delete_prefix(value)


@pytest.fixture
async def relayed(prefix):
    """A RedisState reaching the shared Redis through a relay the test can cut and restore."""
    relay = RedisRelay()
    await relay.restore()
    state = RedisState(relay.url, prefix)
    yield relay, state
    await state.aclose()
    await relay.cut()


@needs_redis
async def test_two_replicas_share_one_count(prefix):
    a, b = RedisState(REDIS_URL, prefix), RedisState(REDIS_URL, prefix)
    rpm = it("k:rpm", 1, 10, WINDOW)
    try:
        results = await asyncio.gather(*(reserve(a if n % 2 else b, [rpm], NOW) for n in range(30)))
        assert sum(reservation is not None for reservation, *_ in results) == 10
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_unreachable_redis_serves_on_local_limits_and_says_so(caplog, unused_tcp_port):
    state = RedisState(f"redis://127.0.0.1:{unused_tcp_port}/0", "x:")
    rpm = it("k:rpm", 1, 2, WINDOW)
    with caplog.at_level(logging.WARNING, "skyrelay.state"):
        results = [await reserve(state, [rpm], NOW) for _ in range(3)]
    assert [reservation is not None for reservation, *_ in results] == [True, True, False]
    assert state.status() == {"backend": "redis", "shared": False, "replicas": 1, "data_lost": 0}
    assert sum("serving on local limits" in r.getMessage() for r in caplog.records) == 1  # said once
    await state.check()  # still down: no crash, still local
    assert not state.shared
    await state.aclose()


@needs_redis
async def test_after_an_outage_the_shared_counters_resume_and_local_spend_is_added_once(relayed):
    relay, state = relayed
    budget = it("k:usd", 0.25, 1.0, PERIOD, NOW + 3600)
    await state.check()
    reservation, *_ = await reserve(state, [budget], NOW)
    assert not reservation.local
    state.settle(reservation, [0.25], NOW)
    await settled(state)
    await relay.cut()
    reservation, *_ = await reserve(state, [budget], NOW)  # Redis gone: served locally
    assert reservation.local and not state.shared
    state.settle(reservation, [0.5], NOW)
    await relay.restore()
    await state.check()
    assert state.shared
    await state.check()  # a second heartbeat must not add the outage's spend again
    assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.75)
    reservation, *_ = await reserve(state, [budget], NOW)
    assert not reservation.local
    assert (await reserve(state, [budget], NOW))[0] is None  # 0.75 + 0.25 used: the shared budget is full


@needs_redis
async def test_a_reservation_made_in_an_outage_and_settled_after_redis_came_back_adds_its_spend(relayed):
    """Its spend waited in the replica until the next outage's recovery, and was lost at shutdown: a long stream
    begun during the outage overshot the shared budget by its whole cost."""
    relay, state = relayed
    budget = it("k:usd", 0.25, 1.0, PERIOD, NOW + 3600)
    await state.check()
    await relay.cut()
    during, *_ = await reserve(state, [budget], NOW)  # Redis gone: served locally
    assert during.local
    await relay.restore()
    await state.check()
    assert state.shared
    state.settle(during, [0.4], NOW)  # the stream ends after the recovery
    await state.check()  # the next heartbeat adds it
    assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.4)
    late, *_ = await reserve(state, [budget], NOW)
    state.settle(late, [0.25], NOW)
    await settled(state)
    assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.65)


@needs_redis
async def test_outage_spend_settled_after_the_recovery_is_added_at_shutdown_before_the_next_heartbeat(prefix):
    relay = RedisRelay()
    await relay.restore()
    state = RedisState(relay.url, prefix)
    budget = it("k:usd", 0.25, 1.0, PERIOD, NOW + 3600)
    try:
        await state.check()
        await relay.cut()
        during, *_ = await reserve(state, [budget], NOW)
        await relay.restore()
        await state.check()
        state.settle(during, [0.4], NOW)
        await state.aclose()  # no heartbeat in between
        reader = RedisState(REDIS_URL, prefix)
        assert await reader.total("k:usd", PERIOD, NOW) == pytest.approx(0.4)
        await reader.aclose()
    finally:
        await relay.cut()


@needs_redis
async def test_the_local_share_is_the_limit_divided_by_the_replicas_alive(prefix):
    relay = RedisRelay()
    await relay.restore()
    a, b = RedisState(relay.url, prefix), RedisState(REDIS_URL, prefix)
    try:
        await b.check()
        await a.check()
        assert a.replicas == 2
        await relay.cut()
        rpm = it("k:rpm", 1, 4, WINDOW)
        results = [await reserve(a, [rpm], NOW) for _ in range(4)]
        assert [reservation is not None for reservation, *_ in results] == [True, True, False, False]
    finally:
        await a.aclose()
        await b.aclose()


async def settle_while_cut(state, relay, budget) -> None:
    """A budget reserved at its estimate (0.3) in Redis, settled at its cost (0.1) while Redis is out of reach:
    the adjustment (-0.2) is owed."""
    reservation, *_ = await reserve(state, [budget], NOW)
    assert not reservation.local
    await relay.cut()
    state.settle(reservation, [0.1], NOW)
    await settled(state)
    assert not state.shared


@needs_redis
@pytest.mark.parametrize("data", ["kept", "lost"])
async def test_an_adjustment_owed_during_an_outage_lands_only_on_the_data_it_adjusts(relayed, prefix, data, caplog):
    """Back with its data, Redis gets the owed adjustment (the budget holds the real cost); back empty (a restart
    without persistence), the adjustment would subtract an estimate it never held, so it is dropped, and the loss
    is said once (the log, status()'s data_lost)."""
    relay, state = relayed
    budget = it("k:usd", 0.3, 1.0, PERIOD, NOW + 3600)
    await state.check()
    await settle_while_cut(state, relay, budget)
    if data == "lost":
        await delete_prefix(prefix)  # what a restart without persistence leaves: nothing, the epoch included
    await relay.restore()
    with caplog.at_level(logging.WARNING, "skyrelay.state"):
        await state.check()
        await state.check()
    assert state.shared
    lost = [r for r in caplog.records if "without its data" in r.getMessage()]
    if data == "kept":
        assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.1)
        assert not lost and state.status()["data_lost"] == 0
    else:
        assert await state.total("k:usd", PERIOD, NOW) == 0  # not -0.2
        assert len(lost) == 1 and state.status()["data_lost"] == 1


async def test_a_budget_added_while_running_has_one_birth_and_keeps_its_largest_seed_once(state):
    """Every worker or replica that learns of a budget added while the gateway runs asks for its counter's birth
    (the first asker's time holds for all) and seeds it with the ledger's spend before then: a smaller figure adds
    nothing, a larger one the difference, and what requests counted meanwhile stays (governance/seeding.py)."""
    name = "k:bot:usd:d1"
    born = await state.birth(name, NOW + 86400)
    await asyncio.sleep(0.01)
    assert await state.birth(name, NOW + 86400) == born
    assert (await reserve(state, [it(name, 400_000, 10_000_000, PERIOD, NOW + 3600)], NOW))[0] is not None
    for figure in (600_000, 500_000, 900_000):  # three seeders, the second read before the first
        await state.seed_budget(name, figure, NOW + 86400)
    assert await state.total(name, PERIOD, NOW) == 1_300_000


@needs_redis
async def test_the_replica_that_finds_redis_empty_seeds_its_budgets_before_any_replica_counts_there(prefix):
    """The first heartbeat on an empty Redis (new, or restarted without persistence) marks it as being seeded,
    asks the governor's seeder for each budget's spend before now, adds it to the counters that do not exist yet
    (one that exists counted requests itself: left alone), then sets the epoch. Meanwhile another replica serves
    on local counters; afterwards both count on the seeded ones."""
    seeder, other = RedisState(REDIS_URL, prefix), RedisState(REDIS_URL, prefix)
    asked = []
    release = asyncio.Event()

    async def seeds(now: float, settled_here: bool) -> dict:
        asked.append(now)
        await release.wait()
        return {"k:bot:usd:d1": (700_000, NOW + 86400), "t:lab:usd:m1": (900_000, 0.0)}

    seeder.seeder = seeds
    await seeder._redis.set(prefix + "t:lab:usd:m1", 5)  # counted before epochs existed: kept as it is
    try:
        seeding = asyncio.create_task(seeder.check())
        while not asked:
            await asyncio.sleep(0.01)
        await other.check()
        assert not other.shared  # the epoch says "seeding": local counters until it is done
        release.set()
        await seeding
        await other.check()
        assert seeder.shared and other.shared and seeder.epoch == other.epoch and other.epoch.endswith("+ledger")
        budget = Item("k:bot:usd:d1", 1_000_000, PERIOD, NOW + 3600)
        assert await other.total(budget.name, PERIOD, NOW) == 700_000
        assert await other.total("t:lab:usd:m1", PERIOD, NOW) == 5
        assert 0 < await seeder._redis.ttl(prefix + budget.name)  # expires as the reserve script makes it
        assert (await other.reserve([budget], [400_000], NOW))[0] is None  # 700,000 + 400,000 > 1,000,000
        await other.seed_budget(budget.name, 700_000, 0.0)  # the same figure seeded again (a budget new to a
        assert await other.total(budget.name, PERIOD, NOW) == 700_000  # replica): the epoch's seed is known
    finally:
        await seeder.aclose()
        await other.aclose()


@needs_redis
async def test_local_spend_of_an_outage_is_not_added_again_to_a_redis_the_ledger_seeded(relayed, prefix,
                                                                                       monkeypatch):
    """Redis came back empty and another replica seeded it from the ledger, which holds what this one served on
    local counters before the seed: that spend is dropped here, and what it settled from the second the seed
    began on is added (counted twice rather than not at all). The seeding replica itself drops all it settled
    before (its ledger had shipped it: redis_seeds waits for that)."""
    relay, state = relayed
    creator = RedisState(REDIS_URL, prefix)
    clock = [NOW]
    monkeypatch.setattr(redis_backend.time, "time", lambda: clock[0])
    creator.seeder = lambda now, settled_here: asyncio.sleep(0, {"k:usd": (0.9, 0.0)})  # the outage's spend too
    budget = it("k:usd", 0.3, 2.0, PERIOD, NOW + 3600)
    try:
        await state.check()  # a new Redis (no seeder here: counted from zero)
        await relay.cut()
        for settled_at, cost in ((NOW + 10.5, 0.25), (NOW + 20.2, 0.125)):  # Redis gone: served locally
            clock[0] = settled_at
            reservation, *_ = await reserve(state, [budget], NOW)
            assert reservation.local
            state.settle(reservation, [cost], NOW)
        await delete_prefix(prefix)  # restarted without persistence
        clock[0] = NOW + 20.7  # the seed's moment: the first settle is in it, the second (same second) is kept
        await creator.check()
        await relay.restore()
        await state.check()
        await state.check()
        assert state.shared and state.status()["data_lost"] == 1
        assert await state.total("k:usd", PERIOD, NOW) == pytest.approx(0.9 + 0.125)  # not + 0.25
    finally:
        await creator.aclose()
