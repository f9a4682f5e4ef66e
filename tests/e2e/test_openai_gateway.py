"""The official openai SDK against the running gateway in front of emulated clouds: the happy paths.
Every answer (and every stream chunk) is also checked against OpenAI's own OpenAPI schemas."""

from __future__ import annotations

import base64
import json
import struct

import httpx2 as httpx
import pytest

from tests.support.openai_schema import validate

HELLO = [{"role": "user", "content": "hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                       "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city"]},
    },
}


def raw_post(stack, path: str, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", json=body, headers={"authorization": f"Bearer {stack.key}"},
                      timeout=10, **kw)


def test_chat_completion_sync(stack):
    client = stack.openai()
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert raw.headers["x-skyrelay-deployment"] in ("cloud-a", "cloud-b")
    assert raw.headers["x-skyrelay-attempts"] == "1"
    assert raw.headers["x-skyrelay-model-group"] == "chat"
    validate("CreateChatCompletionResponse", json.loads(raw.content))


async def test_chat_completion_async(stack):
    client = stack.async_openai()
    reply = await client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5
    await client.close()


def test_stream_with_usage(stack):
    client = stack.openai()
    chunks = list(client.chat.completions.create(model="chat", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_stream_without_usage_has_no_usage_chunk(stack):
    """The gateway always asks upstream for usage (its ledger needs it) but must not show the client a chunk it
    did not ask for."""
    chunks = list(stack.openai().chat.completions.create(model="chat", messages=HELLO, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_stream_async(stack):
    client = stack.async_openai()
    stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    text = ""
    async for chunk in stream:
        text += chunk.choices[0].delta.content or ""
    assert text
    await client.close()


def test_every_stream_chunk_matches_openai_schema(stack):
    resp = raw_post(stack, "/chat/completions", {"model": "chat", "messages": HELLO, "stream": True,
                                                 "stream_options": {"include_usage": True}, "tools": [WEATHER_TOOL]})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in resp.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        validate("CreateChatCompletionStreamResponse", json.loads(event))


def test_tool_call_required(stack):
    reply = stack.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "What is it like in Paris?"}],
        tools=[WEATHER_TOOL], tool_choice="required")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)


def test_streamed_tool_call_deltas_reassemble(stack):
    stream = stack.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.id
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert isinstance(json.loads(calls[0]["arguments"]), dict)


def test_tool_result_round_trip(stack):
    client = stack.openai()
    first = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "weather in Rome"}],
                                           tools=[WEATHER_TOOL], tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    second = client.chat.completions.create(model="chat", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather in Rome"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content


def test_unknown_fields_pass_through(stack):
    reply = stack.openai().chat.completions.create(
        model="chat", messages=HELLO, seed=7, n=2, user="u-1", metadata={"team": "infra"},
        response_format={"type": "text"}, logprobs=False)
    assert len(reply.choices) == 2


def test_embeddings_sdk_default_base64(stack):
    resp = stack.openai().embeddings.create(model="embed", input=["hello", "world"])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) > 0
    assert resp.usage.prompt_tokens > 0


def test_embeddings_float_schema(stack):
    resp = raw_post(stack, "/embeddings", {"model": "embed", "input": "hello", "encoding_format": "float",
                                           "dimensions": 8})
    assert resp.status_code == 200
    body = resp.json()
    validate("CreateEmbeddingResponse", body)
    assert len(body["data"][0]["embedding"]) == 8
    assert resp.headers["x-skyrelay-model-group"] == "embed"


def test_models_list(stack):
    models = stack.openai().models.list()
    assert [m.id for m in models.data] == ["chat", "embed"]
    resp = httpx.get(f"{stack.base_url}/models", headers={"authorization": f"Bearer {stack.key}"})
    validate("ListModelsResponse", resp.json())


def test_health_needs_no_key(stack):
    assert httpx.get(f"{stack.origin}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.origin}/health/ready").json()
    assert ready["status"] == "ready" and set(ready["model_groups"]) == {"chat", "embed"}


def test_streams_return_their_upstream_connection_to_the_pool(stack):
    """A finished stream's keep-alive connection is reused, not torn down (a new TCP + TLS handshake per stream
    would add latency to every request on a real cloud)."""
    client = stack.openai()
    for _ in range(3):
        with client.chat.completions.with_streaming_response.create(model="chat", messages=HELLO, stream=True) as raw:
            list(raw.parse())
            served = raw.headers["x-skyrelay-deployment"]
    pool = stack.gateway.providers[served].http
    assert stack.bg.call(lambda: (pool._open, len(pool._idle))) == (1, 1)


def test_every_answer_names_its_request(stack):
    client = stack.openai()
    first = client.chat.completions.create(model="chat", messages=HELLO)
    second = client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    list(second)
    assert first._request_id and first._request_id.startswith("req_")
    ids = {httpx.get(f"{stack.origin}/health/live").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and first._request_id not in ids
    assert len(httpx.get(f"{stack.origin}/health/live").headers.get_list("x-request-id")) == 1
