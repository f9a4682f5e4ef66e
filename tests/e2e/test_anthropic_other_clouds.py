"""Anthropic in, another cloud out: an Anthropic client's cache breakpoints become Bedrock Converse cachePoint
blocks on a model that caches there (Nova), and the cache reads and writes come back to the client apart; an
OpenAI-compatible cloud gets the request without them, as it would have been without breakpoints, and they are
named; thinking, which becomes reasoning_effort, is refused by name by a cloud that cannot reason, unless
another deployment can serve it."""

from __future__ import annotations

import anthropic
import pytest

from .harness import UPSTREAM_KEY, openai_deployment, start_stack

NOVA = "amazon.nova-pro-v1:0"
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SYSTEM = [{"type": "text", "text": "Short rules."},
          {"type": "text", "text": "You are a patient tutor. " * 250, "cache_control": {"type": "ephemeral"}}]
TOOL = {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral"}}


def groups(clouds):
    nova = {"name": "nova", "kind": "bedrock", "model": NOVA, "region": "us-east-1",
            "base_url": clouds["aws"].base_url, "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}
    return {"nova": {"deployments": [nova]}, "gpt": {"deployments": [openai_deployment("gpt-a", clouds["gpt"])]},
            "nova-then-claude": {"deployments": [{**nova, "name": "nova-2", "weight": 1000},
                                                 {"name": "claude-a", "kind": "anthropic", "model": "claude-x",
                                                  "base_url": clouds["claude"].base_url, "api_key": UPSTREAM_KEY,
                                                  "weight": 1}]}}


@pytest.fixture(scope="module")
def relay(bg):
    clouds = [{"name": "aws", "protocol": "bedrock", "api_key": None,
               "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}},
              {"name": "gpt"}, {"name": "claude", "protocol": "anthropic"}]
    stack = start_stack(bg, clouds, groups=groups)
    yield stack
    stack.close()


def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def ask(text: str, **extra) -> dict:
    return {"max_tokens": 200, "system": SYSTEM, "tools": [TOOL],
            "messages": [{"role": "user", "content": [{"type": "text", "text": text,
                                                       "cache_control": {"type": "ephemeral"}}]}], **extra}


def test_breakpoints_become_cache_points_and_the_cache_is_read_back(relay):
    raw = client(relay).messages.with_raw_response.create(model="nova", **ask("first"))
    first = raw.parse()
    body = relay.clouds["aws"].recent_requests[-1]["body"]
    point = {"cachePoint": {"type": "default"}}
    assert body["system"] == [{"text": "Short rules."}, {"text": SYSTEM[1]["text"]}, point]
    assert body["messages"][0]["content"] == [{"text": "first"}, point]
    assert body["toolConfig"]["tools"][1] == point
    assert "x-skyrelay-dropped-params" not in raw.headers  # mapped, not dropped
    assert first.usage.cache_creation_input_tokens > 1000 and first.usage.cache_read_input_tokens == 0
    with client(relay).messages.stream(model="nova", **ask("second")) as stream:
        second = stream.get_final_message()
    assert second.usage.cache_read_input_tokens >= first.usage.cache_creation_input_tokens - 10


def test_a_cloud_without_breakpoints_gets_the_plain_request_and_names_them(relay):
    raw = client(relay).messages.with_raw_response.create(model="gpt", **ask("plain"))
    assert raw.headers["x-skyrelay-dropped-params"] == "cache_control"
    body = relay.clouds["gpt"].recent_requests[-1]["body"]
    assert body["messages"][0] == {"role": "system", "content": "Short rules.\n" + SYSTEM[1]["text"]}
    assert body["messages"][1] == {"role": "user", "content": "plain"}
    assert "cache_control" not in str(body)


def test_thinking_is_refused_by_name_where_the_cloud_cannot_reason(relay):
    with pytest.raises(anthropic.BadRequestError, match="'reasoning_effort' is not supported by deployment 'nova'"):
        client(relay).messages.create(model="nova", **ask("think", thinking={"type": "enabled",
                                                                          "budget_tokens": 2048}))


def test_thinking_fails_over_to_a_deployment_that_reasons(relay):
    reply = client(relay).messages.with_raw_response.create(
        model="nova-then-claude", **ask("think", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048}))
    assert reply.headers["x-skyrelay-deployment"] == "claude-a"
    assert reply.parse().content[0].type == "thinking"
