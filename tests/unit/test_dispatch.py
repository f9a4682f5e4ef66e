"""The attempt loop without a network: scripted providers stand in for clouds, so each rule is exercised alone."""

from __future__ import annotations

import logging
import random

import pytest

from skyrelay import errors
from skyrelay.canonical import ChatChunk, ChatRequest
from skyrelay.config import Deployment, ModelGroup
from skyrelay.dispatch import Dispatcher


class ScriptedProvider:
    """Yields the scripted chunks, raising an exception object where the script holds one."""

    def __init__(self, name: str, script: list):
        self.name = name
        self.deployment = Deployment(name, "g", "openai", model="m", base_url="http://127.0.0.1:1/v1")
        self.script = script
        self.closed = 0

    async def chat(self, req):
        item = self.script[0]
        if isinstance(item, Exception):
            raise item
        return item

    async def chat_stream(self, req, opened=None):
        try:
            for item in self.script:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed += 1

    async def aclose(self):
        pass


def chunk(content=None, role=None, finish=None) -> ChatChunk:
    return ChatChunk(id="c", model="m", created=0, role=role, content=content, finish_reason=finish)


def dispatcher(*providers: ScriptedProvider) -> Dispatcher:
    group = ModelGroup("g", deployments=tuple(p.deployment for p in providers))
    return Dispatcher({"g": group}, {p.name: p for p in providers}, rng=random.Random(0))


REQ = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], stream=True)


async def test_a_stream_dropped_before_iteration_releases_its_slot():
    provider = ScriptedProvider("a", [chunk("", role="assistant"), chunk("hello"), chunk(finish="stop")])
    d = dispatcher(provider)
    stream, outcome = await d.chat_stream(REQ)
    assert d.outstanding["a"] == 1 and outcome.deployment.name == "a"
    await stream.aclose()  # the client left before the first byte was written
    assert d.outstanding["a"] == 0
    assert provider.closed == 1
    await stream.aclose()  # idempotent
    assert d.outstanding["a"] == 0


async def test_a_finished_stream_releases_its_slot_once():
    d = dispatcher(ScriptedProvider("a", [chunk("", role="assistant"), chunk("hello"), chunk(finish="stop")]))
    stream, _ = await d.chat_stream(REQ)
    assert [c.content async for c in stream] == ["", "hello", None]
    await stream.aclose()
    assert d.outstanding["a"] == 0


async def test_failure_after_the_preamble_fails_over_invisibly():
    broken = ScriptedProvider("a", [chunk("", role="assistant"), errors.UpstreamRateLimited("busy", deployment="a")])
    healthy = ScriptedProvider("b", [chunk("", role="assistant"), chunk("hi"), chunk(finish="stop")])
    d = dispatcher(broken, healthy)
    d.rng = random.Random(1)
    seen = set()
    for _ in range(6):
        stream, outcome = await d.chat_stream(REQ)
        assert [c.content async for c in stream][-2] == "hi"
        seen.add(outcome.deployment.name)
    assert seen == {"b"}
    assert d.outstanding == {"a": 0, "b": 0}


async def test_failure_after_output_breaks_the_stream_and_counts_against_the_deployment():
    d = dispatcher(ScriptedProvider("a", [chunk("hello"), errors.UpstreamUnavailable("gone", deployment="a")]))
    stream, _ = await d.chat_stream(REQ)
    received = []
    try:
        async for c in stream:
            received.append(c.content)
    except errors.UpstreamStreamBroken as exc:
        assert exc.deployment == "a"
    else:
        raise AssertionError("the broken stream ended as if complete")
    assert received == ["hello"]
    assert d.outstanding["a"] == 0
    assert d.health.snapshot()["a"]["failures"] == 1


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def breaker_tripped(d: Dispatcher, name: str, clock: Clock) -> None:
    """Trip `name`'s breaker, then move past its cool-down: the next request to it is the half-open probe."""
    for _ in range(d.health.policy.failure_threshold):
        d.health.on_failure(name, clock.now)
    clock.now += d.health.policy.cooldown
    assert d.health.state(name, clock.now) == "half_open"


async def test_a_streams_verdict_is_its_end_not_its_start():
    """A cloud that cuts every stream after its first tokens must not be cleared by each stream's start."""
    clock = Clock()
    cut = ScriptedProvider("a", [chunk("", role="assistant"), chunk("hel"), errors.UpstreamConnectError(
        "cut", deployment="a")])
    d = dispatcher(cut)
    d.clock = clock
    for expected in (1, 2):
        stream, _ = await d.chat_stream(REQ)
        assert d.health.snapshot().get("a", {}).get("failures", 0) == expected - 1  # committing said nothing
        try:
            async for _ in stream:
                pass
        except errors.UpstreamStreamBroken:
            pass
        assert d.health.snapshot()["a"]["failures"] == expected
    assert d.outstanding["a"] == 0


async def test_a_probe_stream_closes_the_breaker_only_when_it_ends_well():
    clock = Clock()
    d = dispatcher(ScriptedProvider("a", [chunk("", role="assistant"), chunk("hello"), chunk(finish="stop")]))
    d.clock = clock
    breaker_tripped(d, "a", clock)
    stream, _ = await d.chat_stream(REQ)
    assert d.health.unavailable_reason("a", clock.now) == "probe in flight"  # committed, verdict still out
    assert [c.content async for c in stream] == ["", "hello", None]
    assert d.health.state("a", clock.now) == "closed" and not d.health.is_ejected("a")
    await stream.aclose()
    assert d.outstanding["a"] == 0


async def test_a_probe_stream_the_client_abandons_frees_the_probe_slot_with_no_verdict():
    clock = Clock()
    provider = ScriptedProvider("a", [chunk("", role="assistant"), chunk("hello"), chunk("more"), chunk(finish="stop")])
    d = dispatcher(provider)
    d.clock = clock
    breaker_tripped(d, "a", clock)
    stream, _ = await d.chat_stream(REQ)
    assert (await stream.__anext__()).role == "assistant"
    await stream.aclose()  # the client went away mid-stream
    await stream.aclose()
    assert d.outstanding["a"] == 0 and provider.closed == 1
    assert d.health.state("a", clock.now) == "half_open"  # unproven either way
    assert d.health.is_available("a", clock.now)  # the next request may probe


async def test_a_429_without_retry_after_is_a_short_throttle_not_a_breaker_failure():
    clock = Clock()
    throttled = ScriptedProvider("a", [errors.UpstreamRateLimited("slow down", deployment="a")])
    healthy = ScriptedProvider("b", [chunk("", role="assistant"), chunk("hi"), chunk(finish="stop")])
    d = dispatcher(throttled, healthy)
    d.clock = clock
    d.rng = random.Random(1)
    for _ in range(3):
        stream, outcome = await d.chat_stream(REQ)
        assert [c.content async for c in stream][-2] == "hi"
        assert outcome.deployment.name == "b"
        if d.health.snapshot().get("a"):
            break
    snap = d.health.snapshot()["a"]
    assert snap["failures"] == 0 and snap["throttle"] == 1.0
    assert d.health.unavailable_reason("a", clock.now) == "cooling down"
    assert d.health.seconds_until_available("a", clock.now) == 1.0


CHAT = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}])


async def test_a_provider_bug_fails_that_request_alone_and_is_never_charged(caplog):
    # It used to count as the deployment's failure and fail over: three such requests (one client's) then opened
    # the breaker for everyone, and the same bug was replayed on every other deployment.
    d = dispatcher(ScriptedProvider("a", [TypeError("Recursion limit reached")]))
    for _ in range(5):
        with caplog.at_level(logging.ERROR, "skyrelay.dispatch"), pytest.raises(errors.InternalError) as raised:
            await d.chat(CHAT)
        assert raised.value.status == 500 and not raised.value.retryable
        assert "Recursion" not in raised.value.message  # the cause is in the log, not in the client's answer
    assert d.health.snapshot().get("a", {}).get("failures", 0) == 0
    assert d.health.is_available("a", d.clock()) and d.outstanding == {"a": 0}
    logged = [r for r in caplog.records if r.name == "skyrelay.dispatch"]
    assert len(logged) == 5 and all(r.exc_info for r in logged)  # once per request, with the traceback


async def test_a_provider_bug_is_not_replayed_on_another_deployment():
    buggy = ScriptedProvider("a", [KeyError("x")])
    healthy = ScriptedProvider("b", [chunk("hello")])
    d = dispatcher(buggy, healthy)
    tried = set()
    for seed in range(8):  # whichever comes first: a bug on the first is never followed by a second attempt
        d.rng = random.Random(seed)
        try:
            _, outcome = await d.chat(CHAT)
            tried.add(outcome.deployment.name)
            assert outcome.attempts == 1
        except errors.InternalError:
            tried.add("bug")
    assert tried == {"b", "bug"}
    assert d.outstanding == {"a": 0, "b": 0}


async def test_a_provider_bug_frees_the_half_open_probe():
    buggy = ScriptedProvider("a", [ValueError("bad")])
    d = dispatcher(buggy)
    now = d.clock()
    for _ in range(3):
        d.health.on_failure("a", now - 100)  # opened long ago: the cool-down is over, the next request probes
    assert d.health.is_available("a", now)
    with pytest.raises(errors.InternalError):
        await d.chat(CHAT)
    assert d.health.snapshot()["a"]["probe_since"] is None  # the next request may probe
    assert d.health.is_available("a", d.clock())


async def test_a_bug_after_the_stream_started_ends_it_without_charging_the_deployment():
    d = dispatcher(ScriptedProvider("a", [chunk("hello"), RuntimeError("bug")]))
    stream, _ = await d.chat_stream(REQ)
    received = []
    with pytest.raises(errors.InternalError):
        async for c in stream:
            received.append(c.content)
    assert received == ["hello"]
    assert d.outstanding["a"] == 0
    assert d.health.snapshot().get("a", {}).get("failures", 0) == 0


class Ticking:
    """A clock that moves `step` seconds at every read: timings without sleeping."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_a_stream_records_its_ttft_at_its_head_and_its_time_per_token_at_its_end():
    from skyrelay.canonical import Usage
    usage_chunk = ChatChunk(id="c", model="m", created=0, usage=Usage(input_tokens=3, output_tokens=11))
    provider = ScriptedProvider("a", [chunk("", role="assistant"), chunk("hello"), chunk(finish="stop"), usage_chunk])
    group = ModelGroup("g", strategy="fastest", deployments=(provider.deployment,))
    d = Dispatcher({"g": group}, {"a": provider}, rng=random.Random(0), clock=Ticking(0.5))
    stream, _ = await d.chat_stream(REQ)
    ttft = d.latencies.ttft("a", d.clock.now)
    assert ttft == pytest.approx(0.5, rel=0.01)  # one clock step from the attempt's start to its head
    [c async for c in stream]
    assert d.latencies.time_per_token("a", d.clock.now) > 0
    assert d.latencies.mean_output == 11


async def test_a_whole_answer_records_its_time_and_latency_is_not_recorded_when_no_strategy_reads_it():
    from skyrelay.canonical import ChatResponse, Choice, Usage
    answer = ChatResponse(id="r", model="m", created=0, choices=[Choice(content="hi")],
                          usage=Usage(input_tokens=3, output_tokens=2))
    for strategy, measured in (("cheapest_within", True), ("weighted", False)):
        provider = ScriptedProvider("a", [answer])
        group = ModelGroup("g", strategy=strategy, deployments=(provider.deployment,))
        d = Dispatcher({"g": group}, {"a": provider}, rng=random.Random(0), clock=Ticking(0.25))
        await d.chat(ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}]))
        assert (d.latencies.ttft("a", d.clock.now) > 0) is measured
