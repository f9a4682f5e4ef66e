"""Residency, the vendor concentration cap and context fallbacks, with the official SDKs against emulated clouds."""

from __future__ import annotations

import anthropic
import openai
import pytest

from .harness import HELLO, openai_deployment, served

ROUTE = {"x-skyrelay-debug": "route"}


def requests_to(stack, cloud: str) -> int:
    return stack.clouds[cloud].stats["requests"]


# --- residency --------------------------------------------------------------------------------------------------

EU_US = [{"name": "eu-1"}, {"name": "eu-2"}, {"name": "us"}]


def eu_only(clouds):
    return {"chat": {"residency": ["eu"], "max_attempts": 3, "deployments": [
        openai_deployment("eu-1", clouds["eu-1"], geo="eu", region="westeurope"),
        openai_deployment("eu-2", clouds["eu-2"], region="westeurope"),
        openai_deployment("us", clouds["us"], geo="us", region="eastus", weight=10),
    ]}}


def test_residency_never_reaches_a_us_deployment_even_with_every_eu_one_down(make_stack):
    s = make_stack(cloud_specs=EU_US, groups=eu_only)
    assert set(served(s, 20)) <= {"eu-1", "eu-2"} and requests_to(s, "us") == 0
    s.set_faults("eu-1", [{"status": 500, "rate": 1.0}])
    s.set_faults("eu-2", [{"status": 500, "rate": 1.0}])
    client = s.openai(max_retries=0)
    for _ in range(8):  # failing, then with both breakers open: still never the US
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="chat", messages=HELLO, extra_headers=ROUTE)
        assert caught.value.status_code in (502, 503)
    assert "us: residency" in caught.value.response.headers["x-skyrelay-route"]
    assert requests_to(s, "us") == 0


def test_a_residency_header_outside_the_groups_is_a_403_naming_the_policy(make_stack):
    s = make_stack(cloud_specs=EU_US, groups=eu_only)
    client = s.openai(max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="chat", messages=HELLO,
                                       extra_headers={"x-skyrelay-residency": "us", **ROUTE})
    assert caught.value.code == "residency_policy" and "residency policy" in caught.value.message
    assert caught.value.response.headers["x-skyrelay-route"] == "eu-1: residency; eu-2: residency; us: residency"
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=HELLO, extra_headers={"x-skyrelay-residency": "westeurope"})
    assert raw.headers["x-skyrelay-deployment"] in ("eu-1", "eu-2")
    with pytest.raises(anthropic.PermissionDeniedError) as denied:  # in the inbound protocol's own format
        anthropic.Anthropic(base_url=s.origin, api_key=s.key, max_retries=0, timeout=20).messages.create(
            model="chat", max_tokens=10, messages=HELLO, extra_headers={"x-skyrelay-residency": "us"})
    assert "residency policy" in denied.value.message
    assert requests_to(s, "us") == 0


def test_an_empty_residency_header_is_a_400(make_stack):
    s = make_stack(cloud_specs=EU_US, groups=eu_only)
    with pytest.raises(openai.BadRequestError):
        s.openai(max_retries=0).chat.completions.create(model="chat", messages=HELLO,
                                                        extra_headers={"x-skyrelay-residency": ","})


# --- the vendor concentration cap -------------------------------------------------------------------------------

TWO_VENDORS = [{"name": "azure"}, {"name": "aws"}]


def capped(on_breach: str):
    def groups(clouds):
        return {"chat": {"concentration": {"max_share": 0.5, "window_s": 300, "on_breach": on_breach},
                         "max_attempts": 2, "deployments": [
            openai_deployment("azure", clouds["azure"], vendor="azure", weight=9),
            openai_deployment("aws", clouds["aws"], vendor="aws", weight=1),
        ]}}
    return groups


def test_a_half_cap_holds_two_vendors_weighted_9_to_1_near_half(make_stack):
    s = make_stack(cloud_specs=TWO_VENDORS, groups=capped("serve"))
    names = served(s, 100)
    assert 0.45 <= names.count("azure") / 100 <= 0.55
    assert s.gateway.dispatcher.shares.breaches == {}


def test_with_one_vendor_down_serve_keeps_serving_and_counts_breaches(make_stack):
    s = make_stack(cloud_specs=TWO_VENDORS, groups=capped("serve"))
    served(s, 10)
    s.set_faults("aws", [{"status": 500, "rate": 1.0}])
    assert served(s, 20) == ["azure"] * 20  # no client-visible failure
    assert s.gateway.dispatcher.shares.breaches["chat"] >= 10


def test_with_one_vendor_down_refuse_answers_429_naming_the_cap(make_stack):
    s = make_stack(cloud_specs=TWO_VENDORS, groups=capped("refuse"))
    served(s, 10)
    s.set_faults("aws", [{"status": 500, "rate": 1.0}])
    client = s.openai(max_retries=0)
    refused = 0
    for _ in range(20):
        try:
            client.chat.completions.create(model="chat", messages=HELLO, extra_headers=ROUTE)
        except openai.RateLimitError as exc:
            refused += 1
            assert "concentration cap" in exc.message
            assert "azure: concentration" in exc.response.headers["x-skyrelay-route"]
            assert int(exc.response.headers["retry-after"]) >= 1
    assert refused >= 10 and s.gateway.dispatcher.shares.refusals["chat"] == refused


# --- context windows --------------------------------------------------------------------------------------------

LONG = [{"role": "user", "content": "word " * 2000}]  # ~10 kB: ~2,500 tokens by the first estimate


def windows(clouds):
    return {
        "chat": {"context_fallbacks": ["chat-long"], "deployments": [
            openai_deployment("short", clouds["short"], context_window=1000)]},
        "chat-long": {"deployments": [openai_deployment("long", clouds["long"], context_window=100_000)]},
        "tiny": {"deployments": [openai_deployment("tiny", clouds["short"], context_window=100)]},
    }


def test_a_long_prompt_goes_to_the_context_fallbacks_and_never_to_a_window_too_small(make_stack):
    s = make_stack(cloud_specs=[{"name": "short"}, {"name": "long"}], groups=windows)
    client = s.openai(max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=LONG, extra_headers=ROUTE)
    assert raw.headers["x-skyrelay-deployment"] == "long"
    assert raw.headers["x-skyrelay-route"] == "short: context window; long: chosen"
    assert requests_to(s, "short") == 0
    assert served(s, 2) == ["short", "short"]  # a short prompt stays in its own group


def test_a_prompt_longer_than_every_window_is_a_400_context_length_exceeded(make_stack):
    s = make_stack(cloud_specs=[{"name": "short"}, {"name": "long"}], groups=windows)
    with pytest.raises(openai.BadRequestError) as caught:
        s.openai(max_retries=0).chat.completions.create(model="tiny", messages=LONG)
    assert caught.value.code == "context_length_exceeded" and "context window" in caught.value.message
    assert requests_to(s, "short") == 0
    # To an Anthropic client, in Anthropic's words: Claude Code compacts the conversation on "prompt is too long".
    with pytest.raises(anthropic.BadRequestError) as told:
        anthropic.Anthropic(base_url=s.origin, api_key=s.key, max_retries=0).messages.create(
            model="tiny", max_tokens=10, messages=LONG)
    assert told.value.body["error"]["message"].startswith("prompt is too long: the prompt is longer than")
    assert requests_to(s, "short") == 0
