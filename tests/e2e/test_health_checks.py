"""Active health checks: an ejected deployment that recovers while idle comes back without a customer's request
as its probe; a healthy one is never probed."""

from __future__ import annotations

import random
import time

import httpx2 as httpx

from .harness import openai_deployment
from .test_failover import run_requests

CHECK = {"interval_s": 0.2, "timeout_s": 0.2}


def checked_group(clouds):
    return {"chat": {"max_attempts": 3, "deployments": [
        openai_deployment("cloud-a", clouds["cloud-a"], health_check=CHECK),
        openai_deployment("cloud-b", clouds["cloud-b"]),
    ]}}


def admin(stack, cloud: str, method: str, what: str, body=None):
    """The emulator's admin API, over HTTP, as an operator would drive it."""
    origin = stack.clouds[cloud].base_url.split("/v1")[0]
    resp = httpx.request(method, f"{origin}/_emulator/{what}", json=body, timeout=5)
    assert resp.status_code < 300, resp.text
    return resp.json() if resp.content else None


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_an_idle_ejected_deployment_is_closed_by_its_health_check(make_stack):
    s = make_stack(groups=checked_group)
    dispatcher = s.gateway.dispatcher
    dispatcher.rng = random.Random(3)
    health = dispatcher.health
    state = lambda: health.state("cloud-a", dispatcher.clock())  # noqa: E731

    admin(s, "cloud-a", "PUT", "faults", [{"status": 500, "rate": 1.0}])
    run_requests(s, 30)
    assert state() == "open"  # for the 30 s cool-down, far longer than this test waits

    # While it still fails, the checks keep probing and the breaker stays open.
    admin(s, "cloud-a", "DELETE", "stats")
    assert wait_for(lambda: admin(s, "cloud-a", "GET", "stats")["requests"] >= 2)
    assert state() == "open"

    # It recovers while no client sends anything: a check closes the breaker, long before the cool-down ends.
    # Stats first: a check sent between the two calls may close the breaker, and its record must survive.
    admin(s, "cloud-a", "DELETE", "stats")
    admin(s, "cloud-a", "DELETE", "faults")
    assert wait_for(lambda: state() == "closed")
    probes = admin(s, "cloud-a", "GET", "requests")
    assert probes and all(r["path"].endswith("/chat/completions") for r in probes)
    assert all(r["body"]["max_tokens"] == 1 for r in probes)  # a one-token chat

    # Healthy now: the checker sends nothing more, and customers are served by cloud-a again.
    admin(s, "cloud-a", "DELETE", "stats")
    time.sleep(1.0)  # five check intervals
    assert admin(s, "cloud-a", "GET", "stats")["requests"] == 0
    assert "cloud-a" in run_requests(s, 10)


def test_a_deployment_without_health_check_waits_for_a_customer_probe(make_stack):
    s = make_stack(groups=checked_group)
    dispatcher = s.gateway.dispatcher
    dispatcher.health.on_failure("cloud-b", dispatcher.clock())
    for _ in range(2):
        dispatcher.health.on_failure("cloud-b", dispatcher.clock())
    assert dispatcher.health.state("cloud-b", dispatcher.clock()) == "open"
    time.sleep(0.6)
    assert dispatcher.health.state("cloud-b", dispatcher.clock()) == "open"
    assert s.clouds["cloud-b"].stats["requests"] == 0


def test_slow_but_answering_is_not_down(make_stack):
    """Answers that take long (within the timeouts) are successes: the breaker never opens on slowness."""
    def slow_only(clouds):
        return {"chat": {"deployments": [openai_deployment("slow", clouds["slow"])]}}

    s = make_stack(cloud_specs=[{"name": "slow", "ttft_ms": 250}], groups=slow_only)
    health = s.gateway.dispatcher.health
    assert run_requests(s, 2) == ["slow"] * 2
    assert run_requests(s, 2, stream=True) == ["slow"] * 2
    assert health.snapshot() == {}  # not even a record: nothing counted against it
