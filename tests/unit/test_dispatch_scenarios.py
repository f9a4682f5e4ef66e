"""The issue's routing scenarios at full size, deterministic: the real dispatcher and planner with a fake clock and
a seeded random source, scripted clouds in place of the network. Each checks where the requests went and what
x-skyrelay-route said about the candidates skipped on the way."""

from __future__ import annotations

import random

from skyrelay import errors
from skyrelay.canonical import ChatRequest
from skyrelay.config import ModelGroup
from skyrelay.config.model import Concentration
from skyrelay.context import RequestContext
from skyrelay.dispatch import Dispatcher
from tests.unit.test_dispatch_policies import Cloud as VendorCloud
from tests.unit.test_dispatch_quotas import Cloud, dispatcher

REQ = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=20)


async def send(d: Dispatcher, req: ChatRequest = REQ, body_bytes: int = 0):
    """One request asking for x-skyrelay-route: (deployment that served, route)."""
    _, outcome = await d.chat(req, RequestContext(debug_route=True, body_bytes=body_bytes))
    return outcome.deployment.name, outcome.route()


async def test_120_requests_in_a_minute_fill_tier_0s_rpm_60_spill_the_rest_then_return():
    now = [1000.0]
    d = dispatcher(Cloud("ptu", rpm=60), Cloud("paygo", tier=1), now=now)
    served = []
    for _ in range(120):  # 120 requests over 58.8 s: all inside one 60 s window
        name, route = await send(d)
        served.append(name)
        assert route == ("ptu: chosen" if name == "ptu" else "ptu: quota; paygo: chosen")
        now[0] += 0.49
    assert served == ["ptu"] * 60 + ["paygo"] * 60  # no 429: the spill took what tier 0 could not
    now[0] = 1060.2  # the first request (at 1000.0) left the window: one request of headroom
    assert [(await send(d))[0] for _ in range(2)] == ["ptu", "paygo"]
    now[0] = 1000.0 + 58.8 + 61  # the whole window has passed
    assert [(await send(d))[0] for _ in range(10)] == ["ptu"] * 10


async def test_a_tpm_is_never_passed_by_more_than_one_requests_estimate():
    now = [0.0]
    ptu = Cloud("ptu", tpm=1000)
    d = dispatcher(ptu, Cloud("spill", tier=1), now=now)
    req = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=200)
    estimate = d.quotas.estimate(ptu.deployment, 400, 200)
    spilled = 0
    for _ in range(40):
        name, route = await send(d, req, body_bytes=400)
        assert d.quotas.snapshot(now[0])["ptu"]["tokens"] <= 1000 + estimate
        if name == "spill":
            spilled += 1
            assert route == "ptu: quota; spill: chosen"
        now[0] += 1.0
    assert ptu.calls >= 3 and spilled > 20


def capped(on_breach: str, *, b_fails: bool = False) -> tuple[Dispatcher, list[float]]:
    now = [0.0]
    azure = VendorCloud("azure", "azure", weight=9.0)
    aws = VendorCloud("aws", "bedrock", weight=1.0, fail=b_fails)
    group = ModelGroup("g", deployments=(azure.deployment, aws.deployment), max_attempts=2,
                       concentration=Concentration(0.5, 300.0, "requests", on_breach))
    d = Dispatcher({"g": group}, {"azure": azure, "aws": aws}, rng=random.Random(7), clock=lambda: now[0])
    return d, now


async def test_a_half_cap_holds_vendors_weighted_9_to_1_within_a_few_points_over_1000_requests():
    d, now = capped("serve")
    served = []
    for _ in range(1000):  # 1,000 requests over 100 s: one 300 s window
        name, route = await send(d)
        served.append(name)
        now[0] += 0.1
    assert abs(served.count("azure") / 1000 - 0.5) <= 0.03
    assert d.shares.breaches == {}


async def test_with_the_other_vendor_down_serve_serves_over_the_cap_and_counts_each_breach():
    d, now = capped("serve", b_fails=True)
    routes = []
    for _ in range(30):
        name, route = await send(d)
        assert name == "azure"  # no client-visible failure
        routes.append(route)
        now[0] += 0.1
    assert d.shares.breaches["g"] >= 25
    over = [r for r in routes if "over the concentration cap" in r]
    assert len(over) == d.shares.breaches["g"]
    assert any(r.startswith("aws: circuit open; ") for r in over)  # once the down vendor's breaker opened


async def test_with_the_other_vendor_down_refuse_answers_429_naming_the_cap():
    d, now = capped("refuse", b_fails=True)
    refused = 0
    for _ in range(30):
        try:
            await send(d)
        except errors.NoDeploymentAvailable as exc:
            refused += 1
            assert exc.status == 429 and "concentration cap" in exc.message and exc.retry_after >= 1
            assert "azure: concentration" in exc.route
        now[0] += 0.1
    assert refused >= 25 and d.shares.refusals["g"] == refused and d.shares.breaches == {}
