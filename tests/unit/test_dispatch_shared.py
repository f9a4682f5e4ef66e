"""Routing state shared over Redis (dispatch_shared.py): two dispatchers on one Redis prefix play two replicas.
A deployment's rpm is counted once across them, a request with a key costs one script call, a breaker opened by
one is adopted by the other at its next snapshot and released when closed; Redis cut: local shares, no error."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from skyrelay import errors
from skyrelay.config import ModelGroup, parse_config
from skyrelay.context import RequestContext
from skyrelay.dispatch import Dispatcher
from skyrelay.dispatch_shared import SharedRouting, shared_books
from skyrelay.governance import Governor, KeyRateLimited
from skyrelay.routing.health import BreakerPolicy, HealthBook
from skyrelay.routing.shared import SharedQuotaBook
from skyrelay.state.redis import RedisState
from tests.support.redis_service import REDIS_URL, RedisRelay, delete_prefix, fresh_prefix, needs_redis

from tests.unit.test_dispatch_quotas import REQ, Cloud


class Replica:
    """A dispatcher with its shared routing on `url`, the way the gateway wires one (without a server)."""

    def __init__(self, clouds: list[Cloud], prefix: str, url: str = REDIS_URL, keys: list | None = None):
        deployments = tuple(c.deployment for c in clouds)
        levels = sorted({d.tier for d in deployments})
        tiers = tuple(tuple(d for d in deployments if d.tier == t) for t in levels) if len(levels) > 1 else ()
        group = ModelGroup("g", deployments=deployments, tiers=tiers)
        self.state = RedisState(url, prefix)
        self.calls = 0
        reserve = self.state.reserve

        async def counted(*args):
            self.calls += 1
            return await reserve(*args)

        self.state.reserve = counted
        self.dispatcher = Dispatcher({"g": group}, {c.name: c for c in clouds}, rng=random.Random(0),
                                     health=HealthBook(BreakerPolicy(failure_threshold=1, cooldown=30)),
                                     **shared_books())
        config = parse_config({"model_groups": {"g": {"deployments": [
            {"name": "x", "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}},
            "keys": keys or []}, env={})
        self.governor = Governor(config, self.state, self.dispatcher.quotas.input_tokens)
        self.governor.defers = True
        self.dispatcher.governor = self.governor
        self.shared = self.dispatcher.shared = SharedRouting(self.state, self.dispatcher, self.governor)

    async def chat(self, key: str | None = None):
        ctx = RequestContext()
        if key is not None:
            ctx.principal = self.governor.keys.resolve(key)
        return await self.dispatcher.chat(REQ, ctx)

    async def close(self):
        await self.shared.aclose()
        await self.governor.aclose()  # and the state


@pytest.fixture
async def replicas():
    prefix = fresh_prefix()
    made = []

    def make(clouds, **kw):
        made.append(Replica(clouds, prefix, **kw))
        return made[-1]

    yield make
    for replica in made:
        await replica.close()
    await delete_prefix(prefix)


@needs_redis
async def test_two_replicas_count_a_deployments_rpm_once_and_spill_the_rest(replicas):
    a = replicas([Cloud("ptu", rpm=3), Cloud("spill", tier=1)])
    b = replicas([Cloud("ptu", rpm=3), Cloud("spill", tier=1)])
    served = [(await replica.chat())[1].deployment.name for replica in (a, b) * 4]
    assert served.count("ptu") == 3 and served.count("spill") == 5
    await b.shared.refresh()  # the snapshot: the other replica's attempts too
    assert b.dispatcher.view.unavailable_reason(b.dispatcher.groups["g"].deployments[0], 0.0) == "quota"


@needs_redis
async def test_a_request_with_a_key_costs_one_script_call_and_the_keys_refusal_comes_first(replicas):
    key = {"name": "bot", "key": "sk-bot", "rpm": 2}
    a = replicas([Cloud("ptu", rpm=100)], keys=[key])
    await a.chat("sk-bot")
    assert a.calls == 1  # the key's rpm and the deployment's, in one reserve
    await a.chat("sk-bot")
    with pytest.raises(KeyRateLimited):
        await a.chat("sk-bot")
    total = await a.state.total("d:ptu:rpm", "w", time.time())
    assert total == 2  # the refused request took nothing from the deployment


@needs_redis
async def test_a_key_is_still_counted_when_no_deployment_can_be_tried(replicas):
    cloud = Cloud("ptu", error=errors.UpstreamUnavailable("down"))
    a = replicas([cloud], keys=[{"name": "bot", "key": "sk-bot", "rpm": 1}])
    with pytest.raises(errors.GatewayError):
        await a.chat("sk-bot")  # fails, and opens the breaker (threshold 1)
    with pytest.raises(KeyRateLimited):  # nothing to try, but the key's own limit answers first
        await a.chat("sk-bot")


@needs_redis
async def test_a_breaker_opened_by_one_replica_is_adopted_by_the_other_and_released_when_closed(replicas):
    a = replicas([Cloud("flaky", error=errors.UpstreamUnavailable("down"))])
    b = replicas([Cloud("flaky")])
    with pytest.raises(errors.GatewayError):
        await a.chat()
    assert a.dispatcher.health.state("flaky", a.dispatcher.clock()) == "open"
    await _settled(a)
    await b.shared.refresh()
    assert b.dispatcher.health.state("flaky", b.dispatcher.clock()) == "open"
    a.dispatcher.health.on_probe_success("flaky", a.dispatcher.clock())  # an active check answered on A
    await _settled(a)
    await b.shared.refresh()
    assert b.dispatcher.health.state("flaky", b.dispatcher.clock()) == "closed"


async def _settled(replica: Replica) -> None:
    if replica.shared._tasks:
        await asyncio.gather(*replica.shared._tasks)


@needs_redis
async def test_redis_cut_reserves_on_the_local_share_and_the_snapshot_is_dropped_without_an_error(replicas):
    relay = RedisRelay()
    await relay.restore()
    a = replicas([Cloud("ptu", rpm=4), Cloud("spill", tier=1)], url=relay.url)
    await a.shared.refresh()
    assert a.dispatcher.quotas.shared
    await relay.cut()
    await a.shared.refresh()
    assert not a.dispatcher.quotas.shared  # answers from this replica's own attempts now
    served = [(await a.chat())[1].deployment.name for _ in range(6)]
    assert served == ["ptu"] * 4 + ["spill"] * 2  # the lone replica's share: the whole rpm
    assert a.state.status()["shared"] is False


def test_a_shared_quota_book_reads_the_snapshot_plus_its_own_attempts_and_a_refusal_marks_it_full():
    book = SharedQuotaBook()
    deployment = Cloud("ptu", rpm=5, tpm=1000).deployment
    book.load({"ptu": [3, 100]}, {})
    assert book.refusal(deployment, 0.0, 10) is None
    book.reserve(deployment, 0.0, 10)
    book.reserve(deployment, 0.0, 10)
    assert book.refusal(deployment, 0.0, 10) == "quota"  # 3 from the others + 2 of its own
    book.load({"ptu": [0, 0]}, {})
    book.mark_full(deployment, True, 0.0, 7.0)
    assert book.refusal(deployment, 0.0, 10) == "quota"
    assert book.seconds_until_headroom(deployment, 0.0, 10) == pytest.approx(7.0)
    book.lose()
    assert book.refusal(deployment, 0.0, 10) is None  # from its own log: two attempts of five


def test_another_replicas_breaker_verdicts_are_applied_without_being_published_back():
    book = HealthBook(BreakerPolicy(cooldown=30))
    heard = []
    book.on_change = lambda *args: heard.append(args)
    book.adopt("d", 40.0, 30.0)
    assert book.state("d", 10.0) == "open" and book.state("d", 41.0) == "half_open"
    book.release("d", 41.0)
    assert book.state("d", 41.0) == "closed" and heard == []
    for _ in range(3):
        book.on_failure("d", 50.0)
    assert heard == [("d", 110.0, 60.0)]  # this book's own trip is heard (a repeat offence: twice as long)


@needs_redis
async def test_a_cancel_swallowed_inside_a_redis_call_still_lets_the_background_loops_end(replicas):
    """On Python 3.11 redis-py's asyncio.wait_for can swallow a cancel that lands as a command is sent: the
    snapshot and heartbeat loops then went on, and a shutdown waited for them forever."""
    replica = replicas([Cloud("a", rpm=5)])
    for name in ("snapshot", "check", "flags"):
        real = getattr(replica.state, name)

        async def swallowing(*args, real=real):
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass  # as that wait_for does: the call's result wins over the cancel
            return await real(*args)

        setattr(replica.state, name, swallowing)
    replica.state.start()
    replica.shared.start()
    replica.governor._refresh = asyncio.ensure_future(replica.governor._refresh_flags())  # start(), no key store
    await asyncio.sleep(0.02)  # the three loops are inside a call
    loops = [replica.shared._refresher, replica.state._heartbeat, replica.governor._refresh]
    closed, _ = await asyncio.wait([asyncio.ensure_future(replica.close())], timeout=10)
    assert closed, "the shutdown waited for its background loops"
    assert all(task.done() for task in loops)  # ended by the flag, not left behind by finish_within
