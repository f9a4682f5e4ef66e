"""Hedging against emulated clouds, through the official openai SDK: one cloud stalls 10% of its requests (the
emulator's seeded `hang` fault); hedging sends those to the other vendor's cloud after `after_ms`.

The comparison is by construction, not by a latency threshold: a stalled request cannot answer before the stall
ends, so without hedging some requests take at least the stall; with hedging, none waits for it.
"""

from __future__ import annotations

import time

from .harness import openai_deployment

STALL_S = 1.0
HEDGE_MS = 150


def hedged_group(hedge: dict | None):
    def groups(clouds):
        deployments = [openai_deployment("stalls", clouds["stalls"], vendor="alpha", weight=9),
                       openai_deployment("steady", clouds["steady"], vendor="beta", weight=1)]
        return {"chat": {"deployments": deployments, **({"hedge": hedge} if hedge else {})}}
    return groups


def stack_with_stalls(make_stack, hedge: dict | None):
    s = make_stack(cloud_specs=[{"name": "stalls"}, {"name": "steady"}], groups=hedged_group(hedge))
    s.set_faults("stalls", [{"kind": "hang", "seconds": STALL_S, "rate": 0.1}])
    return s


def timed(s, count: int, *, stream: bool = False) -> tuple[list[float], list[str]]:
    """Send `count` requests one after another: each one's seconds, and its x-skyrelay-route."""
    client = s.openai(max_retries=0)
    seconds, routes = [], []
    for i in range(count):
        start = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"question {i}"}], stream=stream,
            extra_headers={"x-skyrelay-debug": "route"})
        answer = raw.parse()
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        else:
            assert answer.choices[0].message.content
        seconds.append(time.monotonic() - start)
        routes.append(raw.headers["x-skyrelay-route"])
    return seconds, routes


def test_without_hedging_the_stalled_requests_wait_out_the_stall(make_stack):
    s = stack_with_stalls(make_stack, None)
    seconds, _ = timed(s, 40)
    stalled = s.clouds["stalls"].stats["faults"].get("hang", 0)
    assert stalled >= 2
    assert sum(1 for t in seconds if t >= STALL_S) == stalled  # every stalled request waited it out


def test_hedging_answers_every_request_before_the_stall_ends(make_stack):
    for stream in (False, True):
        s = stack_with_stalls(make_stack, {"after_ms": HEDGE_MS})
        seconds, routes = timed(s, 25, stream=stream)
        stalled = s.clouds["stalls"].stats["faults"].get("hang", 0)
        assert stalled >= 1, "the seeded fault plan must stall some requests for this test to mean anything"
        assert max(seconds) < STALL_S  # no request waited for a stalled cloud
        hedged = [r for r in routes if "hedge after" in r]
        assert len(hedged) >= stalled  # each stall was hedged (a slow moment may hedge a healthy one too)
        won_by_hedge = [r for r in hedged if "stalls: cancelled" in r]
        assert len(won_by_hedge) >= stalled and all("steady: hedge after" in r and r.endswith("chosen")
                                                    for r in won_by_hedge)
        dispatcher = s.gateway.dispatcher
        assert dispatcher.health.snapshot().get("stalls", {}).get("failures", 0) == 0  # cancelled, not failed
        assert dispatcher.outstanding == {"stalls": 0, "steady": 0}
        deadline = time.monotonic() + 5
        while s.clouds["stalls"].stats["by_status"].get("client_gone", 0) < stalled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.clouds["stalls"].stats["by_status"].get("client_gone", 0) >= stalled  # the losers' connections closed
