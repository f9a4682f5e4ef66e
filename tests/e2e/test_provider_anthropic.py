"""The gateway in front of emulated Anthropic Messages endpoints, driven with the official openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from .harness import UPSTREAM_KEY, start_stack

pytest.importorskip("skyrelay.emulator.protocols.anthropic", reason="the anthropic emulator has not landed yet")

HELLO = [{"role": "user", "content": "hello"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MODEL = "claude-sonnet-4-5"


def anthropic_deployment(name: str, cloud) -> dict:
    return {"name": name, "kind": "anthropic", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY,
            "model": MODEL, "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}


def anthropic_groups(clouds: dict) -> dict:
    return {"chat": {"deployments": [anthropic_deployment(name, cloud) for name, cloud in clouds.items()]}}


CLOUD = {"name": "claude-a", "protocol": "anthropic"}


@pytest.fixture(scope="module")
def claude(bg):
    stack = start_stack(bg, [CLOUD], groups=anthropic_groups)
    yield stack
    stack.close()


def last_request(stack, cloud: str = "claude-a") -> dict:
    return stack.clouds[cloud].recent_requests[-1]


def test_chat_with_system_prompt(claude):
    raw = claude.openai().chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "system", "content": "Be brief."}, *HELLO], temperature=0.2)
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL and reply.id.startswith("msg_")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    sent = last_request(claude)
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["system"] == "Be brief." and sent["body"]["max_tokens"] == 4096
    assert "anthropic-version" in sent["headers"]


def test_max_tokens_gives_length(claude):
    reply = claude.openai().chat.completions.create(model="chat", messages=HELLO, max_tokens=3)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3


def test_stream_with_usage(claude):
    chunks = list(claude.openai().chat.completions.create(
        model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_round_trip(claude):
    client = claude.openai()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(model="chat", messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="required")
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    messages += [message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    final = client.chat.completions.create(model="chat", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content
    turns = last_request(claude)["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"][0]["type"] == "tool_result"


def test_streamed_tool_call(claude):
    chunks = list(claude.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert "city" in json.loads(arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_image(claude):
    reply = claude.openai().chat.completions.create(model="chat", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert reply.choices[0].message.content
    block = last_request(claude)["body"]["messages"][0]["content"][1]
    assert block["source"]["type"] == "base64" and block["source"]["media_type"] == "image/png"


def test_json_schema_answer(claude):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = claude.openai().chat.completions.create(
        model="chat", messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}})
    assert "city" in json.loads(reply.choices[0].message.content)
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls


def test_unsupported_feature_is_a_clear_400(claude):
    with pytest.raises(openai.BadRequestError) as info:
        claude.openai().chat.completions.create(model="chat", messages=HELLO, logprobs=True)
    assert "logprobs" in info.value.message and "claude-a" in info.value.message


def test_overloaded_fails_over_and_then_maps_to_503(make_stack):
    stack = make_stack(cloud_specs=[CLOUD, {**CLOUD, "name": "claude-b"}], groups=anthropic_groups)
    stack.set_faults("claude-a", [{"status": 529}])
    for _ in range(3):
        raw = stack.openai().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert raw.headers["x-skyrelay-deployment"] == "claude-b"
    stack.set_faults("claude-b", [{"status": 529}])
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model="chat", messages=HELLO, stream=True)
    assert info.value.status_code == 503


def test_rate_limited_is_429(make_stack):
    stack = make_stack(cloud_specs=[CLOUD], groups=anthropic_groups)
    stack.set_faults("claude-a", [{"status": 429, "retry_after": 2}])
    with pytest.raises(openai.RateLimitError) as info:
        stack.openai().chat.completions.create(model="chat", messages=HELLO)
    assert info.value.response.headers["retry-after"] == "2"


def test_cut_stream_ends_with_an_error(make_stack):
    stack = make_stack(cloud_specs=[CLOUD], groups=anthropic_groups)
    stack.set_faults("claude-a", [{"kind": "cut_stream", "after_chunks": 4}])
    with pytest.raises(openai.APIError):
        list(stack.openai().chat.completions.create(model="chat", messages=HELLO, stream=True))


def test_thinking_passes_through_and_its_blocks_are_skipped(claude):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    reply = claude.openai().chat.completions.create(model="chat", messages=HELLO, max_tokens=2048,
                                                    extra_body={"thinking": thinking})
    assert reply.choices[0].message.content
    assert last_request(claude)["body"]["thinking"] == thinking
    chunks = list(claude.openai().chat.completions.create(model="chat", messages=HELLO, max_tokens=2048,
                                                          stream=True, extra_body={"thinking": thinking}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_refusal_is_content_filter(claude):
    claude.set_faults("claude-a", [{"kind": "content_filter", "target": "prompt", "times": 2}])
    try:
        reply = claude.openai().chat.completions.create(model="chat", messages=HELLO)
        chunks = list(claude.openai().chat.completions.create(model="chat", messages=HELLO, stream=True))
    finally:
        claude.clear_faults("claude-a")
    assert reply.choices[0].finish_reason == "content_filter"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"]
