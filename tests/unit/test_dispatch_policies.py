"""The dispatcher's side of the policies: what a fenced-off request is answered, shares counted at send."""

from __future__ import annotations

import random

import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest, ChatResponse, Usage
from skyrelay.config import Deployment, ModelGroup, Price
from skyrelay.config.model import Concentration
from skyrelay.context import RequestContext
from skyrelay.routing.policies import parse_residency


class Cloud:
    def __init__(self, name: str, kind: str = "openai", *, fail: bool = False, unsupported: bool = False, **kw):
        self.name = name
        self.deployment = Deployment(name, "g", kind, model="m", base_url="http://127.0.0.1:1/v1", **kw)
        self.fail, self.unsupported, self.calls = fail, unsupported, 0

    async def chat(self, req):
        self.calls += 1
        if self.unsupported:
            raise errors.UnsupportedFeature("no tools here", param="tools")
        if self.fail:
            raise errors.UpstreamUnavailable("down", deployment=self.name)
        return ChatResponse(id="r", model="m", created=0, choices=[], usage=Usage(10, 5))

    def dropped_extras(self, extra):
        return ()

    async def aclose(self):
        pass


def dispatcher(*clouds: Cloud, **group):
    from skyrelay.dispatch import Dispatcher
    g = ModelGroup("g", deployments=tuple(c.deployment for c in clouds), **group)
    return Dispatcher({"g": g}, {c.name: c for c in clouds}, rng=random.Random(0))


REQ = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=20)


async def test_no_deployment_inside_the_residency_is_a_403_naming_the_policy_and_nothing_is_sent():
    us = Cloud("us", geo="us")
    d = dispatcher(us, residency=frozenset({"eu"}))
    with pytest.raises(errors.PermissionDenied) as caught:
        await d.chat(REQ, RequestContext(debug_route=True))
    assert caught.value.status == 403 and caught.value.code == "residency_policy"
    assert "residency policy (model group 'g' residency [eu])" in caught.value.message
    assert caught.value.route == "us: residency" and us.calls == 0


async def test_the_header_naming_a_place_the_group_excludes_is_403_too():
    d = dispatcher(Cloud("eu", geo="eu"), residency=frozenset({"eu"}))
    with pytest.raises(errors.PermissionDenied) as caught:
        await d.chat(REQ, RequestContext(residency=parse_residency("us")))
    assert "x-skyrelay-residency [us]" in caught.value.message


async def test_allowed_deployments_all_down_is_a_503_and_the_outside_one_is_never_tried():
    eu, us = Cloud("eu", geo="eu", fail=True), Cloud("us", geo="us")
    d = dispatcher(eu, us, residency=frozenset({"eu"}))
    for _ in range(8):  # until eu's breaker opens: still never us
        with pytest.raises(errors.NoDeploymentAvailable) as caught:
            await d.chat(REQ)
        assert caught.value.status == 503
    assert us.calls == 0 and eu.calls >= 1
    assert "us: outside the residency policy" in caught.value.message


async def test_a_prompt_no_deployment_can_take_is_a_400_context_length_exceeded():
    small = Cloud("small", context_window=5)
    d = dispatcher(small)
    with pytest.raises(errors.InvalidRequest) as caught:
        await d.chat(REQ, RequestContext(body_bytes=4000))
    assert caught.value.status == 400 and caught.value.code == "context_length_exceeded"
    assert "context window" in caught.value.message and small.calls == 0
    resp, outcome = await d.chat(REQ, RequestContext(body_bytes=8))
    assert outcome.deployment.name == "small"


def _capped(on_breach, *, measure="requests"):
    a = Cloud("a", "azure", weight=9.0, price=Price(2.0, 2.0))
    b = Cloud("b", "bedrock", weight=1.0, fail=True, price=Price(1.0, 1.0))
    return a, b, dispatcher(a, b, concentration=Concentration(0.5, 300.0, measure, on_breach), max_attempts=2)


async def test_serve_keeps_serving_when_the_other_vendor_is_down_and_counts_breaches():
    a, b, d = _capped("serve")
    for _ in range(20):
        resp, outcome = await d.chat(REQ)
        assert outcome.deployment.name == "a"
    assert d.shares.breaches["g"] >= 10


async def test_refuse_answers_429_naming_the_cap_once_the_only_vendor_is_over_it():
    a, b, d = _capped("refuse")
    answered = refused = 0
    for _ in range(20):
        try:
            await d.chat(REQ, RequestContext(debug_route=True))
            answered += 1
        except errors.NoDeploymentAvailable as exc:
            refused += 1
            assert exc.status == 429 and "concentration cap" in exc.message
            assert "a: concentration" in exc.route
    assert answered >= 1 and refused >= 10 and d.shares.refusals["g"] == refused
    assert d.shares.breaches == {}


async def test_a_refused_attempt_is_refunded_from_the_vendor_share():
    a = Cloud("a", "azure", unsupported=True)
    b = Cloud("b", "bedrock")
    d = dispatcher(a, b, concentration=Concentration(0.5, 300.0))
    for _ in range(5):
        await d.chat(REQ)
    assert d.shares.snapshot(0.0)["g"].get("azure", 0) == 0 and d.shares.snapshot(0.0)["g"]["aws"] == 5


async def test_the_cost_measure_counts_the_estimated_price():
    a = Cloud("a", "azure", price=Price(1_000_000.0, 0.0))
    d = dispatcher(a, concentration=Concentration(0.5, 300.0, "cost"))
    await d.chat(REQ, RequestContext(body_bytes=400))
    assert d.shares._groups["g"]["azure"].tokens == pytest.approx(100.0)  # 400 bytes / 4 per token, $1 each
