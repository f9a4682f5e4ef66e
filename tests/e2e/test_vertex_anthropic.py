"""Claude on Vertex AI (kind vertex_anthropic). The emulated Vertex is proven by the anthropic SDK's own
AnthropicVertex client (rawPredict, streamRawPredict, count-tokens); then the gateway, reached by the anthropic SDK,
forwards the client's body to it (cache breakpoints, signed thinking, betas kept; `model` in the URL,
`anthropic_version: vertex-2023-10-16` in the body), and the openai SDK's requests reach it through the
canonical core.
"""

from __future__ import annotations

import anthropic
import pytest

from .harness import UPSTREAM_KEY, start_stack

PROJECT, REGION = "proj-1", "us-east5"
MODEL = "claude-sonnet-4-5@20250929"
SYSTEM = [{"type": "text", "text": "You are a careful coding agent. " * 180, "cache_control": {"type": "ephemeral"}}]
THINKING = {"type": "enabled", "budget_tokens": 1024}
BETAS = ["context-management-2025-06-27"]
TIMEOUTS = {"connect": 1, "first_byte": 5, "total": 20}
PREFIX = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models"


def groups(clouds):
    vertex = {"name": "vertex-claude", "kind": "vertex_anthropic", "base_url": clouds["vertex"].base_url,
              "api_key": UPSTREAM_KEY, "model": MODEL, "project": PROJECT, "location": REGION,
              "timeouts": TIMEOUTS}
    return {"claude": {"deployments": [vertex]}}


@pytest.fixture(scope="module")
def relay(bg):
    clouds = [{"name": "vertex", "protocol": "vertex_anthropic", "models": [MODEL],
               "options": {"project": PROJECT, "location": REGION}}]
    stack = start_stack(bg, clouds, groups=groups)
    yield stack
    stack.close()


def vertex_sdk(stack, cls=anthropic.AnthropicVertex, token: str = UPSTREAM_KEY):
    return cls(region=REGION, project_id=PROJECT, access_token=token, base_url=stack.clouds["vertex"].base_url,
               max_retries=0, timeout=20)


def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def received(stack) -> dict:
    return stack.clouds["vertex"].recent_requests[-1]


def request(text: str, **extra) -> dict:
    return {"model": "claude", "max_tokens": 2048, "system": SYSTEM, "thinking": THINKING,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text,
                                                       "cache_control": {"type": "ephemeral"}}]}], **extra}


# --- the emulator, judged by the SDK's Vertex client ----------------------------------------------------------------


def test_the_sdk_vertex_client_creates_streams_and_counts(relay):
    sdk = vertex_sdk(relay)
    reply = sdk.messages.create(**{**request("direct"), "model": MODEL})
    assert received(relay)["path"] == f"{PREFIX}/{MODEL}:rawPredict"
    assert reply.content[0].type == "thinking" and reply.content[0].signature
    assert reply.usage.cache_creation_input_tokens > 1000
    with sdk.messages.stream(**{**request("direct"), "model": MODEL}) as stream:
        message = stream.get_final_message()
    assert received(relay)["path"].endswith(":streamRawPredict")
    assert message.usage.cache_read_input_tokens > 1000
    count = sdk.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "how many tokens?"}])
    assert count.input_tokens > 0 and received(relay)["path"] == f"{PREFIX}/count-tokens:rawPredict"


async def test_the_sdk_async_vertex_client(relay):
    async with vertex_sdk(relay, anthropic.AsyncAnthropicVertex) as sdk:
        reply = await sdk.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        async with sdk.messages.stream(model=MODEL, max_tokens=50,
                                       messages=[{"role": "user", "content": "hi"}]) as stream:
            message = await stream.get_final_message()
    assert reply.content[0].text and message.content[0].text


def test_the_emulator_refuses_a_wrong_token_and_an_unknown_model(relay):
    with pytest.raises(anthropic.AuthenticationError):
        vertex_sdk(relay, token="wrong").messages.create(model=MODEL, max_tokens=5,
                                                         messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.NotFoundError, match="was not found"):
        vertex_sdk(relay).messages.create(model="claude-nope@1", max_tokens=5,
                                          messages=[{"role": "user", "content": "hi"}])


# --- through the gateway --------------------------------------------------------------------------------------------


def test_the_client_body_reaches_vertex_with_the_model_in_the_url(relay):
    sent_request = request("through", context_management={"edits": [{"type": "clear_thinking_20251015"}]})
    raw = client(relay).beta.messages.with_raw_response.create(**sent_request, betas=BETAS)
    reply = raw.parse()
    sent = received(relay)
    assert sent["path"] == f"{PREFIX}/{MODEL}:rawPredict"
    expected = {k: v for k, v in sent_request.items() if k != "model"}
    assert sent["body"] == {**expected, "anthropic_version": "vertex-2023-10-16"}
    assert sent["headers"]["anthropic-beta"] == ",".join(BETAS)
    assert raw.headers["x-skyrelay-deployment"] == "vertex-claude"
    assert "x-skyrelay-dropped-params" not in raw.headers
    assert reply.content[0].type == "thinking" and reply.content[0].signature


def test_signed_thinking_and_cache_reads_survive_the_next_turn_streamed(relay):
    first = client(relay).messages.create(**request("next turn"))
    history = [{"role": "user", "content": "next turn"},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               request("and then?")["messages"][0]]
    with client(relay).messages.stream(**{**request(""), "messages": history}) as stream:
        message = stream.get_final_message()
    sent = received(relay)
    assert sent["path"].endswith(":streamRawPredict") and sent["body"]["stream"] is True
    assert sent["body"]["messages"][1]["content"][0]["signature"] == first.content[0].signature
    assert message.usage.cache_read_input_tokens > 1000 and message.content[0].type == "thinking"
    history[1]["content"][0]["signature"] = "tampered"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        client(relay).messages.create(**{**request(""), "messages": history})


async def test_async_through_the_gateway(relay):
    async with anthropic.AsyncAnthropic(base_url=relay.origin, api_key=relay.key, max_retries=0, timeout=20) as c:
        reply = await c.messages.create(**request("async"))
        async with c.messages.stream(**request("async")) as stream:
            message = await stream.get_final_message()
    assert reply.content[0].signature and message.usage.cache_read_input_tokens > 1000


def test_openai_clients_reach_vertex_claude_through_the_canonical_core(relay):
    openai = relay.openai()
    reply = openai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hello"}],
                                           max_tokens=64)
    body = received(relay)["body"]
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body and body["max_tokens"] == 64
    chunks = list(openai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert received(relay)["path"].endswith(":streamRawPredict")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) and chunks[-1].usage


def test_what_only_anthropic_runs_is_refused_by_name(relay):
    with pytest.raises(anthropic.BadRequestError, match="'mcp_servers' is not supported by deployment"):
        client(relay).beta.messages.create(
            model="claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
            mcp_servers=[{"type": "url", "url": "https://mcp.example.com", "name": "x"}])


def test_a_capacity_hint_is_dropped_and_named(relay):
    raw = client(relay).messages.with_raw_response.create(
        model="claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}], service_tier="auto")
    assert raw.headers["x-skyrelay-dropped-params"] == "service_tier"
    assert "service_tier" not in received(relay)["body"]


def test_count_tokens_is_forwarded_to_vertex(relay):
    raw = client(relay).messages.with_raw_response.count_tokens(model="claude", system=SYSTEM,
                                                                messages=[{"role": "user", "content": "count"}])
    sent = received(relay)
    assert sent["path"] == f"{PREFIX}/count-tokens:rawPredict"
    assert sent["body"]["model"] == MODEL and sent["body"]["anthropic_version"] == "vertex-2023-10-16"
    assert raw.headers["x-skyrelay-deployment"] == "vertex-claude" and raw.parse().input_tokens > 1000
