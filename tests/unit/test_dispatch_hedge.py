"""Hedging in the attempt loop: scripted clouds that answer after a delay, real asyncio timers of a few ms.

Nothing here asserts on timing: each cloud either answers at once or stalls far longer than the test runs, so
which attempt wins is decided by construction.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from skyrelay import errors
from skyrelay.canonical import ChatChunk, ChatRequest, ChatResponse, Usage
from skyrelay.config import Deployment, ModelGroup
from skyrelay.config.model import Hedge
from skyrelay.context import RequestContext
from skyrelay.dispatch import Dispatcher

STALL = 30.0  # far past any test: a stalled attempt only ends by being cancelled


class Cloud:
    """Answers after `delay` seconds (or raises `error`), and remembers being cancelled."""

    def __init__(self, name: str, vendor: str, *, delay: float = 0.0, error=None, weight: float = 1.0, **limits):
        self.name = name
        self.deployment = Deployment(name, "g", "openai", model="m", base_url="http://127.0.0.1:1/v1",
                                     vendor=vendor, weight=weight, **limits)
        self.delay, self.error = delay, error
        self.calls = self.cancelled = self.closed = 0

    async def _wait(self):
        self.calls += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error

    async def chat(self, req):
        await self._wait()
        return ChatResponse(id="r", model="m", created=0, choices=[], usage=Usage(10, 5))

    async def chat_stream(self, req, opened=None):
        try:
            await self._wait()
            yield ChatChunk(id="c", model="m", created=0, content=f"from {self.name}")
            yield ChatChunk(id="c", model="m", created=0, usage=Usage(10, 5))
        finally:
            self.closed += 1

    def dropped_extras(self, extra):
        return ()

    async def aclose(self):
        pass


def dispatcher(*clouds: Cloud, hedge=Hedge(after_ms=20), strategy="weighted", fallbacks=()) -> Dispatcher:
    group = ModelGroup("g", strategy=strategy, deployments=tuple(c.deployment for c in clouds), hedge=hedge,
                       fallbacks=fallbacks)
    return Dispatcher({"g": group}, {c.name: c for c in clouds}, rng=random.Random(0))


REQ = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=20)
STREAM = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=20, stream=True)


async def test_a_stalled_answer_is_hedged_at_another_vendor_and_the_loser_cancelled():
    slow = Cloud("slow", "x", delay=STALL, weight=1, tpm=100_000)
    fast = Cloud("fast", "y", weight=0)  # a standby: tried last, so the stalled one is always first
    d = dispatcher(slow, fast)
    ctx = RequestContext(debug_route=True)
    resp, outcome = await asyncio.wait_for(d.chat(REQ, ctx), 5)
    assert outcome.deployment.name == "fast" and resp.usage == Usage(10, 5)
    assert slow.cancelled == 1  # its upstream call was stopped (the connection closed with it)
    assert [(a.deployment, a.status, a.hedged) for a in ctx.attempts] == [
        ("slow", "cancelled", False), ("fast", "ok", True)]
    assert ctx.hedged and ctx.closed and ctx.usage == Usage(10, 5)
    assert d.outstanding == {"slow": 0, "fast": 0}
    assert d.health.snapshot().get("slow", {}).get("failures", 0) == 0  # cancelled, not failed
    assert d.quotas.snapshot(d.clock())["slow"]["tokens"] > 0  # the loser's estimate still counts
    route = outcome.route()
    assert "slow: cancelled" in route and "fast: hedge after" in route and route.endswith("chosen")


async def test_an_answer_before_the_delay_is_not_hedged():
    first = Cloud("first", "x", weight=1)
    other = Cloud("other", "y", weight=0)
    d = dispatcher(first, other)
    ctx = RequestContext()
    _, outcome = await d.chat(REQ, ctx)
    assert outcome.deployment.name == "first" and other.calls == 0
    assert [a.hedged for a in ctx.attempts] == [False] and not ctx.hedged


async def test_the_hedge_skips_candidates_of_the_stalled_vendor():
    stalled = Cloud("x1", "x", delay=STALL, weight=100)
    same_vendor = Cloud("x2", "x", weight=1)
    other = Cloud("y1", "y", weight=0)
    d = dispatcher(stalled, same_vendor, other)
    d.rng = random.Random(3)
    _, outcome = await asyncio.wait_for(d.chat(REQ), 5)
    assert outcome.context.attempts[0].deployment == "x1", "the test needs x1 first"
    assert outcome.deployment.name == "y1" and same_vendor.calls == 0


async def test_a_failure_before_the_delay_fails_over_as_without_hedging():
    broken = Cloud("broken", "x", weight=1, error=errors.UpstreamUnavailable("down", deployment="broken"))
    healthy = Cloud("healthy", "y", weight=0)
    d = dispatcher(broken, healthy)
    ctx = RequestContext()
    _, outcome = await d.chat(REQ, ctx)
    assert outcome.deployment.name == "healthy"
    assert [(a.status, a.hedged) for a in ctx.attempts] == [("failed", False), ("ok", False)]
    assert d.health.snapshot()["broken"]["failures"] == 1


async def test_a_failed_hedge_leaves_the_first_attempt_to_answer():
    slowish = Cloud("slowish", "x", delay=0.15, weight=1)
    broken = Cloud("broken", "y", weight=0, error=errors.UpstreamUnavailable("down", deployment="broken"))
    d = dispatcher(slowish, broken)
    ctx = RequestContext()
    _, outcome = await asyncio.wait_for(d.chat(REQ, ctx), 5)
    assert outcome.deployment.name == "slowish" and outcome.attempt is ctx.attempts[0]
    assert [(a.status, a.hedged) for a in ctx.attempts] == [("ok", False), ("failed", True)]


async def test_a_client_error_from_the_first_attempt_ends_the_request_and_the_hedge():
    refused = Cloud("refused", "x", delay=0.05, weight=1,
                    error=errors.UpstreamClientError("bad request", deployment="refused"))
    stalled = Cloud("stalled", "y", delay=STALL, weight=0)
    d = dispatcher(refused, stalled)
    with pytest.raises(errors.UpstreamClientError):
        await asyncio.wait_for(d.chat(REQ), 5)
    assert stalled.cancelled == 1 and d.outstanding == {"refused": 0, "stalled": 0}


async def test_a_stalled_stream_is_hedged_and_the_loser_stream_closed():
    slow = Cloud("slow", "x", delay=STALL, weight=1)
    fast = Cloud("fast", "y", weight=0)
    d = dispatcher(slow, fast)
    ctx = RequestContext()
    stream, outcome = await asyncio.wait_for(d.chat_stream(STREAM, ctx), 5)
    assert outcome.deployment.name == "fast" and slow.closed == 1 and d.outstanding["slow"] == 0
    assert [c.content async for c in stream] == ["from fast", None]
    assert ctx.closed and ctx.attempts[1].status == "ok" and ctx.attempts[0].status == "cancelled"
    assert d.outstanding == {"slow": 0, "fast": 0}


async def test_the_client_leaving_abandons_every_attempt_in_flight():
    a = Cloud("a", "x", delay=STALL, weight=1)
    b = Cloud("b", "y", delay=STALL, weight=0)
    d = dispatcher(a, b)
    ctx = RequestContext()
    task = asyncio.ensure_future(d.chat(REQ, ctx))
    await asyncio.sleep(0.1)  # both in flight by now
    assert a.calls == b.calls == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.cancelled == b.cancelled == 1 and d.outstanding == {"a": 0, "b": 0}
    assert [a.status for a in ctx.attempts] == ["abandoned", "abandoned"] and ctx.closed


async def test_after_percentile_waits_for_samples_then_hedges_at_the_observed_percentile():
    slow = Cloud("slow", "x", delay=STALL, weight=1)
    fast = Cloud("fast", "y", weight=0)
    d = dispatcher(slow, fast, hedge=Hedge(after_percentile=90))
    assert d.measures_latency
    task = asyncio.ensure_future(d.chat(REQ))
    await asyncio.sleep(0.1)
    assert not task.done() and fast.calls == 0  # no samples of `slow` yet: nothing says it is late
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(20):
        d.latencies.observe_first_token("slow", d.clock(), 0.01)
    _, outcome = await asyncio.wait_for(d.chat(REQ), 5)
    assert outcome.deployment.name == "fast"


class AfterTheHedge(Cloud):
    """Answers once the hedge has been sent elsewhere: the first attempt wins with its hedge still in flight."""

    def __init__(self, name: str, vendor: str, hedge: Cloud, **kw):
        super().__init__(name, vendor, **kw)
        self.hedge = hedge

    async def _wait(self):
        self.calls += 1
        while not self.hedge.calls:
            await asyncio.sleep(0.005)


async def test_a_first_attempt_winning_after_its_hedge_began_closes_the_request_with_the_losers_record_in():
    """The request was closed (its ledger record written, its budget settled) before the hedge's loser was
    stopped: the loser's attempt was never recorded (its spool segment kept for ever) and the budget priced the
    answer at the loser's deployment."""
    hedge = Cloud("hedge", "y", delay=STALL, weight=0)
    first = AfterTheHedge("first", "x", hedge, weight=1)
    d = dispatcher(first, hedge)
    closed = []
    d.on_close = lambda ctx: closed.append([(a.deployment, a.status) for a in ctx.attempts])
    ctx = RequestContext()
    resp, outcome = await asyncio.wait_for(d.chat(REQ, ctx), 5)
    assert outcome.deployment.name == "first" and ctx.hedged and hedge.cancelled == 1
    assert closed == [[("first", "ok"), ("hedge", "cancelled")]]
    assert ctx.served is ctx.attempts[0]


def test_the_budget_prices_a_hedged_answer_at_the_deployment_that_served_it():
    from types import SimpleNamespace

    from skyrelay.context import Attempt
    from skyrelay.governance.admission import settled_values

    won, lost = (Attempt(SimpleNamespace(name=name, vendor=name, region=None), 0.0, 10) for name in ("cheap", "dear"))
    won.status, lost.status = "ok", None  # the loser still in flight, as it was when the request closed
    ctx = SimpleNamespace(usage=Usage(10, 5), attempts=[won, lost], served=won)
    cheap = SimpleNamespace(input_per_mtok=1.0, output_per_mtok=1.0, cached_input_per_mtok=None,
                            cache_write_per_mtok=None, discount=0.0)
    dear = SimpleNamespace(input_per_mtok=100.0, output_per_mtok=100.0, cached_input_per_mtok=None,
                           cache_write_per_mtok=None, discount=0.0)
    governor = SimpleNamespace(served_prices={"cheap": cheap, "dear": dear})
    assert settled_values(governor, ctx, (1, 100, 1, 999)) == (1, 15, 0, 15)  # 15 micro-dollars, not 1,500


async def test_a_stream_whose_cloud_reported_no_usage_leaves_the_requests_usage_unknown():
    """Bedrock's and Gemini's decoders close a stream without usage with a zero usage chunk (for a client that asked
    for one): taken as the cloud's report, the ledger recorded 0 tokens and $0 and the budget was refunded."""
    from skyrelay.canonical import UNREPORTED_USAGE
    from skyrelay.providers.bedrock.stream import ConverseStreamDecoder

    decoder = ConverseStreamDecoder("id", "m", "d")
    decoder.stopped = True
    assert decoder.finish()[0].usage is UNREPORTED_USAGE

    class Silent(Cloud):
        async def chat_stream(self, req, opened=None):
            yield ChatChunk(id="c", model="m", created=0, content="some text")
            yield ChatChunk(id="c", model="m", created=0, usage=UNREPORTED_USAGE)

    d = dispatcher(Silent("quiet", "x"), hedge=None)
    ctx = RequestContext()
    stream, _ = await d.chat_stream(STREAM, ctx)
    async for _ in stream:
        pass
    assert ctx.usage is None and ctx.closed
