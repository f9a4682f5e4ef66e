"""Routing that knows capacity, against emulated clouds that really refuse past their quotas."""

from __future__ import annotations

import asyncio

import openai

from .harness import HELLO, openai_deployment, served



def throttled(stack, cloud: str) -> int:
    return stack.clouds[cloud].stats["by_status"].get("429", 0)


def tiers(ptu_limits: dict, spill_limits: dict | None = None):
    def groups(clouds):
        return {"chat": {"deployments": [
            openai_deployment("spill", clouds["spill"], tier=1, **(spill_limits or {})),
            openai_deployment("ptu", clouds["ptu"], **ptu_limits),
        ]}}
    return groups


def test_tier_0_takes_its_rpm_and_tier_1_the_spill_with_no_429_then_traffic_returns(make_stack):
    s = make_stack(cloud_specs=[{"name": "ptu", "quota": {"rpm": 6}}, {"name": "spill"}], groups=tiers({"rpm": 6}))
    now = [1000.0]
    s.gateway.dispatcher.clock = lambda: now[0]  # the gateway's minute passes by hand
    assert served(s, 10) == ["ptu"] * 6 + ["spill"] * 4
    assert s.clouds["ptu"].stats["requests"] == 6 and throttled(s, "ptu") == 0
    now[0] += 61.0
    s.bg.run(_fresh_minute(s.clouds["ptu"]))  # the cloud's minute passes too: its buckets start afresh
    assert served(s, 3) == ["ptu"] * 3
    assert throttled(s, "ptu") == 0


async def _fresh_minute(cloud) -> None:
    cloud.set_capacity({"quota": {"rpm": 6}})


def test_a_tpm_quota_is_never_passed_by_more_than_one_estimate(make_stack):
    tpm = 1000
    s = make_stack(cloud_specs=[{"name": "ptu", "quota": {"tpm": tpm}}, {"name": "spill"}],
                   groups=tiers({"tpm": tpm}))
    names = served(s, 12, max_tokens=200)
    assert names[0] == "ptu" and "spill" in names
    counters = s.clouds["ptu"].capacity_state["counters"]["total"]
    assert throttled(s, "ptu") == 0  # skyrelay stopped before the cloud had to refuse
    used = s.gateway.dispatcher.quotas.snapshot(s.gateway.dispatcher.clock())["ptu"]["tokens"]
    assert used <= tpm + 200 + 50 and counters["served"] == names.count("ptu")


def test_a_quota_skyrelay_was_not_told_about_moves_traffic_by_the_clouds_headers(make_stack):
    s = make_stack(cloud_specs=[{"name": "ptu", "quota": {"rpm": 3}}, {"name": "spill"}], groups=tiers({}))
    assert served(s, 8) == ["ptu"] * 3 + ["spill"] * 5  # x-ratelimit-remaining-requests: 0 after the third
    assert throttled(s, "ptu") == 0


def test_every_deployment_at_quota_is_a_429_with_retry_after(make_stack):
    s = make_stack(cloud_specs=[{"name": "ptu"}, {"name": "spill"}], groups=tiers({"rpm": 1}, {"rpm": 1}))
    assert sorted(served(s, 2)) == ["ptu", "spill"]
    client = s.openai(max_retries=0)
    try:
        client.chat.completions.create(model="chat", messages=HELLO)
    except openai.RateLimitError as exc:
        assert 1 <= int(exc.response.headers["retry-after"]) <= 60
        assert "quota" in exc.message
    else:
        raise AssertionError("expected a 429")
    assert s.clouds["ptu"].stats["requests"] == 1 and s.clouds["spill"].stats["requests"] == 1


def test_debug_route_names_every_candidate_and_why(make_stack):
    s = make_stack(cloud_specs=[{"name": "ptu"}, {"name": "spill"}], groups=tiers({"rpm": 1}, {"rpm": 2}))
    client = s.openai(max_retries=0)
    seen_ids = []
    for expected in ("ptu: chosen", "ptu: quota; spill: chosen"):
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=HELLO, extra_headers={"x-skyrelay-debug": "route"})
        assert raw.headers["x-skyrelay-route"] == expected
        seen_ids.append(raw.headers["x-request-id"])
    assert len(set(seen_ids)) == 2 and all(i.startswith("req_") for i in seen_ids)
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert "x-skyrelay-route" not in raw.headers
    try:
        client.chat.completions.create(model="chat", messages=HELLO, extra_headers={"x-skyrelay-debug": "route"})
    except openai.RateLimitError as exc:
        assert exc.response.headers["x-skyrelay-route"] == "ptu: quota; spill: quota"
    else:
        raise AssertionError("expected a 429")


def test_the_context_carries_the_request_id_the_client_sees(make_stack):
    s = make_stack()
    dispatcher, contexts = s.gateway.dispatcher, []
    chat = dispatcher.chat

    async def recording(req, ctx=None):
        contexts.append(ctx)
        return await chat(req, ctx)
    dispatcher.chat = recording
    raw = s.openai().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert raw.headers["x-request-id"] == contexts[0].request_id and contexts[0].closed
    assert contexts[0].body_bytes > 0 and contexts[0].attempts[0].status == "ok"


def one_slot(queue_timeout_ms: int):
    def groups(clouds):
        return {"chat": {"queue_timeout_ms": queue_timeout_ms, "deployments": [
            openai_deployment("slow", clouds["slow"], max_concurrency=1)]}}
    return groups


async def _concurrently(client, count: int) -> list:
    return await asyncio.gather(
        *(client.chat.completions.create(model="chat", messages=HELLO) for _ in range(count)), return_exceptions=True)


def test_at_max_concurrency_requests_queue_for_a_slot_within_queue_timeout(make_stack):
    s = make_stack(cloud_specs=[{"name": "slow", "ttft_ms": 150}], groups=one_slot(5000))
    results = s.bg.run(_concurrently(s.async_openai(max_retries=0), 4))
    assert all(r.choices[0].message.content for r in results)
    assert s.clouds["slow"].stats["requests"] == 4


def test_at_max_concurrency_without_a_queue_the_rest_get_429(make_stack):
    s = make_stack(cloud_specs=[{"name": "slow", "ttft_ms": 300}], groups=one_slot(0))
    results = s.bg.run(_concurrently(s.async_openai(max_retries=0), 4))
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert refused and len(refused) < 4 and all("concurrency" in r.message for r in refused)
    assert s.clouds["slow"].stats["requests"] == 4 - len(refused)


def test_anthropics_rate_limit_headers_move_traffic_too(make_stack):
    from .test_provider_anthropic import anthropic_deployment

    def groups(clouds):
        return {"chat": {"deployments": [openai_deployment("spill", clouds["spill"], tier=1),
                                         anthropic_deployment("claude", clouds["claude"])]}}
    s = make_stack(cloud_specs=[{"name": "claude", "protocol": "anthropic", "quota": {"rpm": 2}}, {"name": "spill"}],
                   groups=groups)
    assert served(s, 5) == ["claude"] * 2 + ["spill"] * 3  # anthropic-ratelimit-requests-remaining: 0
    assert throttled(s, "claude") == 0


def test_a_cloud_that_throttles_without_headers_loses_traffic_after_its_first_429s(make_stack):
    """Bedrock's ThrottlingException says nothing of what is left or when: skyrelay (told no rpm) learns from the
    429 itself, cools the deployment down and fails over invisibly, instead of sending every request to it."""
    from .test_provider_bedrock import bedrock_cloud, bedrock_groups

    def groups(clouds):
        aws = bedrock_groups()(clouds)["claude"]["deployments"][0]
        return {"chat": {"deployments": [aws, openai_deployment("spill", clouds["spill"], tier=1)]}}
    aws_cloud = {**bedrock_cloud()[0], "quota": {"rpm": 3}}
    s = make_stack(cloud_specs=[aws_cloud, {"name": "spill"}], groups=groups)
    client = s.openai(max_retries=0)
    names, routes = [], []
    for _ in range(15):  # every one answered: no client-visible failure while the spill has headroom
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO,
                                                               extra_headers={"x-skyrelay-debug": "route"})
        assert raw.parse().choices[0].message.content
        names.append(raw.headers["x-skyrelay-deployment"])
        routes.append(raw.headers["x-skyrelay-route"])
    assert names[:3] == ["aws-east"] * 3 and names.count("spill") >= 10
    assert throttled(s, "aws") <= 3  # most requests never met the quota: the cool-down kept them away
    assert any(route.startswith("aws-east: cooling down; spill: chosen") for route in routes)
    assert any("aws-east: failed (UpstreamRateLimited); spill: chosen" == route for route in routes)
