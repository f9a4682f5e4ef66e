"""The dispatcher's side of quotas and the request context: reserve at send, settle at the end, close once."""

from __future__ import annotations

import asyncio
import random

import pytest

from skyrelay import errors
from skyrelay.canonical import ChatChunk, ChatRequest, ChatResponse, Usage
from skyrelay.config import Deployment, ModelGroup
from skyrelay.context import RequestContext
from skyrelay.dispatch import Dispatcher
from skyrelay.routing.quotas import DEFAULT_OUTPUT_TOKENS


class Cloud:
    """Answers every chat with `usage`, or raises the scripted error; streams two chunks and a usage chunk."""

    def __init__(self, name: str, *, tier: int = 0, usage=Usage(10, 5), error=None, **limits):
        self.name = name
        self.deployment = Deployment(name, "g", "openai", model="m", base_url="http://127.0.0.1:1/v1", tier=tier,
                                     **limits)
        self.usage, self.error, self.calls = usage, error, 0
        self.gate: asyncio.Event | None = None

    async def chat(self, req):
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return ChatResponse(id="r", model="m", created=0, choices=[], usage=self.usage)

    async def chat_stream(self, req, opened=None):
        self.calls += 1
        yield ChatChunk(id="c", model="m", created=0, content="hi")
        yield ChatChunk(id="c", model="m", created=0, usage=self.usage)

    def dropped_extras(self, extra):
        return ()

    async def aclose(self):
        pass


def dispatcher(*clouds: Cloud, queue_timeout_ms: int = 0, now=None) -> Dispatcher:
    deployments = tuple(c.deployment for c in clouds)
    levels = sorted({d.tier for d in deployments})
    tiers = tuple(tuple(d for d in deployments if d.tier == t) for t in levels) if len(levels) > 1 else ()
    group = ModelGroup("g", deployments=deployments, tiers=tiers, queue_timeout_ms=queue_timeout_ms)
    clock = (lambda: now[0]) if now is not None else None
    kw = {"clock": clock} if clock else {}
    return Dispatcher({"g": group}, {c.name: c for c in clouds}, rng=random.Random(0), **kw)


REQ = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=20)


async def test_the_context_records_each_attempt_and_closes_once_on_an_answer():
    d = dispatcher(Cloud("bad", error=errors.UpstreamUnavailable("down", deployment="bad")), Cloud("good", tier=1))
    ctx, closes = RequestContext("req_x", body_bytes=40), []
    ctx.on_close = closes.append
    _, outcome = await d.chat(REQ, ctx)
    assert outcome.context is ctx and closes == [ctx] and ctx.request_id == "req_x"
    assert [(a.deployment, a.status, a.error_kind) for a in ctx.attempts] == [
        ("bad", "failed", "UpstreamUnavailable"), ("good", "ok", None)]
    assert ctx.usage == Usage(10, 5) and ctx.group == "g" and ctx.max_output == 20
    assert not ctx.close()  # exactly once


async def test_the_context_closes_on_an_error_and_at_a_streams_end():
    d = dispatcher(Cloud("a", error=errors.UpstreamUnavailable("down", deployment="a")))
    ctx = RequestContext()
    with pytest.raises(errors.NoDeploymentAvailable):
        await d.chat(REQ, ctx)
    assert ctx.closed
    d = dispatcher(Cloud("a", usage=Usage(7, 3), tpm=1000))
    ctx = RequestContext()
    stream, _ = await d.chat_stream(ChatRequest(model="g", messages=[], stream=True), ctx)
    assert not ctx.closed and d.quotas.snapshot(d.clock())["a"]["tokens"] == DEFAULT_OUTPUT_TOKENS  # held
    [c async for c in stream]
    assert ctx.closed and ctx.usage == Usage(7, 3) and ctx.attempts[0].status == "ok"
    assert d.quotas.snapshot(d.clock())["a"]["tokens"] == 10  # settled with the reported usage

    await stream.aclose()
    assert d.outstanding["a"] == 0


async def test_a_requests_max_tokens_stays_charged_as_the_clouds_charge_it():
    d = dispatcher(Cloud("a", usage=Usage(7, 3), tpm=1000))
    await d.chat(REQ)  # max_tokens=20
    assert d.quotas.snapshot(d.clock())["a"]["tokens"] == 7 + 20


async def test_rpm_spills_to_the_next_tier_and_a_refusal_is_refunded():
    now = [0.0]
    ptu, spill = Cloud("ptu", rpm=2), Cloud("spill", tier=1)
    d = dispatcher(ptu, spill, now=now)
    served = [(await d.chat(REQ))[1].deployment.name for _ in range(4)]
    assert served == ["ptu", "ptu", "spill", "spill"]
    now[0] = 61.0
    assert (await d.chat(REQ))[1].deployment.name == "ptu"  # headroom is back: traffic returns to tier 0
    ptu.error = errors.UnsupportedFeature("no", param="x")
    assert (await d.chat(REQ))[1].deployment.name == "spill"
    assert d.quotas.snapshot(now[0])["ptu"]["requests"] == 1  # the refused attempt was never sent


async def test_all_at_quota_is_a_429_with_retry_after_from_the_earliest_headroom():
    now = [0.0]
    d = dispatcher(Cloud("a", rpm=1), Cloud("b", rpm=1, tier=1), now=now)
    await d.chat(REQ)
    now[0] = 10.0
    await d.chat(REQ)
    now[0] = 20.0
    with pytest.raises(errors.NoDeploymentAvailable) as caught:
        await d.chat(REQ)
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(40.0)
    assert "quota" in caught.value.message


async def test_at_max_concurrency_a_request_waits_for_a_slot_in_arrival_order():
    busy = Cloud("a", max_concurrency=1)
    busy.gate = asyncio.Event()
    d = dispatcher(busy, queue_timeout_ms=5000)
    first = asyncio.create_task(d.chat(REQ))
    await asyncio.sleep(0)
    order = []

    async def later(tag):
        await d.chat(REQ)
        order.append(tag)
    waiting = [asyncio.create_task(later(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert busy.calls == 1  # the others wait for the slot
    busy.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 5)
    assert order == [0, 1, 2] and busy.calls == 4


async def test_without_queue_timeout_a_full_deployment_answers_429_at_once():
    busy = Cloud("a", max_concurrency=1)
    busy.gate = asyncio.Event()
    d = dispatcher(busy)
    first = asyncio.create_task(d.chat(REQ))
    await asyncio.sleep(0)
    with pytest.raises(errors.NoDeploymentAvailable) as caught:
        await d.chat(REQ)
    assert caught.value.status == 429 and "concurrency" in caught.value.message
    busy.gate.set()
    await first


async def test_a_queue_timeout_runs_out_into_a_429():
    busy = Cloud("a", max_concurrency=1)
    busy.gate = asyncio.Event()
    d = dispatcher(busy, queue_timeout_ms=30)
    first = asyncio.create_task(d.chat(REQ))
    await asyncio.sleep(0)
    with pytest.raises(errors.NoDeploymentAvailable) as caught:
        await asyncio.wait_for(d.chat(REQ), 5)
    assert caught.value.status == 429
    busy.gate.set()
    await first


async def test_an_abandoned_stream_closes_its_context_and_keeps_its_estimate():
    d = dispatcher(Cloud("a", tpm=10_000))
    ctx = RequestContext()
    stream, _ = await d.chat_stream(ChatRequest(model="g", messages=[], stream=True, max_tokens=100), ctx)
    await stream.aclose()  # the client left before the end: the cloud may still have spent the tokens
    assert ctx.closed and ctx.attempts[0].status == "abandoned"
    assert d.quotas.snapshot(d.clock())["a"]["tokens"] == 100 and d.outstanding["a"] == 0
