"""The capacity logic on a fake clock: buckets, quota lanes, provisioned throughput, slots and queue, prefix cache."""

from __future__ import annotations

import asyncio
import random

import pytest

from skyrelay.emulator import CloudSpec, EmulatorConfigError
from skyrelay.emulator.capacity import Bucket, Capacity, CapacityRefused, Gate
from skyrelay.emulator.capacity_config import CacheSettings, CapacityConfigError, parse_capacity
from skyrelay.emulator.config import specs_from_dict
from skyrelay.emulator.generate import ChatInput, Message, generate_chat
from skyrelay.emulator.prefix_cache import PrefixCache
from skyrelay.emulator.timing import Pacer, Timing


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def chat(text: str = "hello", max_tokens: int | None = 10, system: str | None = None, model: str = "m") -> ChatInput:
    messages = ([Message("system", system)] if system else []) + [Message("user", text)]
    return ChatInput(model=model, messages=messages, max_tokens=max_tokens)


def capacity(clock: Clock, protocol: str = "openai", **settings) -> Capacity:
    return Capacity(parse_capacity(settings), protocol, 24, clock)


async def admit(cap: Capacity, inp: ChatInput, key: str = "m", pacer: Pacer | None = None):
    gen = generate_chat(inp, 0, 24)
    ticket = await cap.admit(key, inp, gen, pacer or Pacer(Timing(10.0, 100.0), random.Random(0)))
    return ticket, gen


def test_a_bucket_refills_continuously_over_its_window():
    bucket = Bucket(10, 60.0, now=0.0)
    bucket.charge(10, 0.0)
    assert not bucket.fits(1, 0.0) and bucket.remaining(0.0) == 0
    assert bucket.wait_for(1, 0.0) == pytest.approx(6.0)
    assert bucket.reset_in(0.0) == pytest.approx(60.0)
    assert bucket.fits(1, 6.0) and bucket.remaining(30.0) == 5
    assert bucket.wait_for(11, 0.0) == float("inf")


async def test_rpm_refuses_beyond_the_limit_until_the_window_refills():
    clock = Clock()
    cap = capacity(clock, quota={"rpm": 2, "window_s": 2})
    await admit(cap, chat())
    ticket, _ = await admit(cap, chat())
    assert ticket.quota == [("requests", 2, 0, pytest.approx(2.0))]
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat())
    assert info.value.reason == "requests" and info.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    await admit(cap, chat())
    assert cap.counters()["total"]["served"] == 3 and cap.counters()["total"]["throttled"] == {"requests": 1}


async def test_tokens_are_charged_at_arrival_as_prompt_plus_max_tokens():
    clock = Clock()
    cap = capacity(clock, quota={"tpm": 100})
    inp = chat(max_tokens=40)
    ticket, gen = await admit(cap, inp)
    assert ticket.quota[0][2] == 100 - (gen.prompt_tokens + 40)
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat(max_tokens=80))
    assert info.value.reason == "tokens" and info.value.requested == gen.prompt_tokens + 80


async def test_a_request_larger_than_the_whole_limit_is_told_to_wait_a_window():
    cap = capacity(Clock(), quota={"tpm": 50, "window_s": 5})
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat(max_tokens=100))
    assert info.value.retry_after == 5


async def test_azure_enforces_rpm_over_one_second():
    clock = Clock()
    cap = capacity(clock, "azure", quota={"rpm": 600})  # 10 a second, not 600 in a burst
    for _ in range(10):
        await admit(cap, chat())
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat())
    assert info.value.retry_after == pytest.approx(0.1)
    clock.now += 0.1
    await admit(cap, chat())
    ten = capacity(clock, "azure", quota={"rpm": 600, "rpm_window_s": 10})
    for _ in range(100):
        await admit(ten, chat())
    with pytest.raises(CapacityRefused):
        await admit(ten, chat())


async def test_models_have_their_own_lanes_and_overrides():
    cap = capacity(Clock(), quota={"rpm": 1}, per_model={"big": {"quota": {"rpm": 3}}, "free": {"quota": None}})
    await admit(cap, chat(), "small")
    with pytest.raises(CapacityRefused):
        await admit(cap, chat(), "small")
    for _ in range(3):
        await admit(cap, chat(), "big")
    for _ in range(3):  # `quota: null` in an override: no quota for that model
        assert (await admit(cap, chat(), "free"))[0] is None
    assert set(cap.counters()["by_model"]) == {"small", "big"}


async def test_provisioned_fast_fails_above_full_utilisation_and_corrects_at_completion():
    clock = Clock()
    cap = capacity(clock, "azure", provisioned={"tpm": 600, "window_s": 60})  # drains 10 tokens a second
    first, gen = await admit(cap, chat(max_tokens=500))
    second, _ = await admit(cap, chat(max_tokens=500))  # admitted at <= 100%, which takes it above
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat(max_tokens=1))
    assert info.value.reason == "provisioned"
    over = 2 * (gen.prompt_tokens + 500) - 600
    assert info.value.retry_after == pytest.approx(over / 10)
    first.release()  # the reply had far fewer tokens than max_tokens: the estimate is corrected down
    second.release()
    await admit(cap, chat(max_tokens=1))


async def test_slots_queue_in_fifo_order_and_refuse_beyond_the_queue():
    gate = Gate(slots=1, queue=2)
    assert await gate.enter() is True
    order = []

    async def wait(n):
        await gate.enter()
        order.append(n)

    waiters = [asyncio.create_task(wait(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    assert gate.waiting == 2 and await gate.enter() is False
    gate.release()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.gather(*waiters)
    assert order == [1, 2] and gate.in_use == 1
    gate.release()
    assert gate.in_use == 0


async def test_a_client_that_leaves_the_queue_gives_up_its_place():
    gate = Gate(slots=1, queue=1)
    await gate.enter()
    leaver = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    assert gate.waiting == 0
    gate.release()
    assert gate.in_use == 0


async def test_overloaded_requests_are_refused_and_refunded():
    cap = capacity(Clock(), concurrency=1, quota={"rpm": 5})
    held, _ = await admit(cap, chat())
    with pytest.raises(CapacityRefused) as info:
        await admit(cap, chat())
    assert info.value.reason == "overloaded"
    assert cap.lane("m").snapshot(cap.clock())[0][2] == 4  # the refused request used no quota
    held.release()
    (await admit(cap, chat()))[0].release()


async def test_load_slowdown_grows_ttft_and_token_time_with_busy_slots():
    cap = capacity(Clock(), concurrency=2, load_slowdown={"ttft": 1.0, "tokens": 3.0})
    await admit(cap, chat())
    pacer = Pacer(Timing(10.0, 100.0), random.Random(0))
    await admit(cap, chat(), pacer=pacer)  # both slots busy: full load
    assert pacer.ttft == pytest.approx(0.020) and pacer.token_interval == pytest.approx(0.04)


def long_prompt(words: int = 1200) -> str:
    return " ".join(f"rule{i}" for i in range(words))


def test_a_prefix_seen_within_the_ttl_is_cached_in_block_increments():
    cache = PrefixCache(CacheSettings(ttl_s=10, min_tokens=1024, block_tokens=128))
    system = long_prompt()
    first = cache.prefixes(chat("question one", system=system))
    assert cache.cached_tokens(first, 0.0) == 0
    cache.remember(first, 0.0)
    again = cache.prefixes(chat("another question", system=system))
    cached = cache.cached_tokens(again, 5.0)
    assert cached >= 1024 and cached % 128 == 0
    assert cache.cached_tokens(again, 11.0) == 0  # the TTL is over
    assert cache.prefixes(chat("short")) == []  # below min_tokens nothing is cacheable


async def test_the_lane_reports_cached_tokens_and_counts_hits():
    cap = capacity(Clock(), prompt_cache={"ttl_s": 60})
    system = long_prompt()
    _, first = await admit(cap, chat("one", system=system))
    _, second = await admit(cap, chat("two", system=system))
    assert first.cached_tokens == 0 and 1024 <= second.cached_tokens < second.prompt_tokens
    counts = cap.counters()["total"]
    assert counts["cache_hits"] == 1 and counts["cached_tokens"] == second.cached_tokens


def test_unlimited_clouds_have_no_lanes():
    cap = capacity(Clock())
    assert not cap.enabled and cap.lane("m") is None


@pytest.mark.parametrize("raw, message", [
    ({"quota": {"rpm": 0}}, "quota.rpm"),
    ({"quota": {}}, "quota: give at least one"),
    ({"quota": {"rpm": 1, "burst": 2}}, "quota: unknown key"),
    ({"queue": 3}, "queue: needs `concurrency`"),
    ({"concurrency": 1.5}, "concurrency: expected a whole number"),
    ({"provisioned": {"window_s": 1}}, "provisioned.tpm: required"),
    ({"load_slowdown": {"ttft": 1}}, "load_slowdown: needs `concurrency`"),
    ({"prompt_cache": {"ttl": 3}}, "prompt_cache: unknown key"),
    ({"per_model": {"m": {"quota": {"rpm": -1}}}}, "per_model.m.quota.rpm"),
    ({"quota": {"rpm": 1, "window_s": 1, "rpm_window_s": 2}}, "rpm_window_s: must not exceed"),
])
def test_config_errors_name_the_path(raw, message):
    with pytest.raises(EmulatorConfigError) as info:
        specs_from_dict({"clouds": [{"name": "c", "protocol": "openai", **raw}]})
    assert f"clouds[0].{message}" in str(info.value) or message in str(info.value)
    assert "clouds[0]" in str(info.value)


def test_a_cloud_spec_carries_its_capacity():
    spec = CloudSpec(quota={"rpm": 5}, prompt_cache={"ttl_s": 2}, per_model={"x": {"concurrency": 2}})
    plan = spec.capacity_plan()
    assert plan.defaults.quota.rpm == 5 and plan.per_model["x"].concurrency == 2
    assert plan.per_model["x"].quota.rpm == 5  # an override replaces only the keys it names
    with pytest.raises(CapacityConfigError):
        parse_capacity({"quota": "lots"})


async def test_a_request_that_leaves_the_queue_gives_its_quota_back():
    cap = capacity(Clock(), concurrency=1, queue=1, quota={"rpm": 5})
    held, _ = await admit(cap, chat())
    queued = asyncio.create_task(admit(cap, chat()))
    await asyncio.sleep(0)
    assert cap.lane("m").gate.waiting == 1
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert cap.lane("m").snapshot(cap.clock())[0][2] == 4
    held.release()
    assert cap.lane("m").gate.in_use == 0
