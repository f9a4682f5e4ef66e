"""The official openai SDK talking directly to an `openai` emulated cloud; every body checked against the spec."""

from __future__ import annotations

import asyncio

import openai
import orjson
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "Say something nice."}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
CLOCK_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Current clock time in a timezone",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}}


def client(cloud, **kw) -> AsyncOpenAI:
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="sk-test", max_retries=0, **kw))


async def raw_chat(cloud, **body) -> dict:
    response = await client(cloud).chat.completions.with_raw_response.create(model=MODEL, **body)
    data = orjson.loads(response.http_response.content)
    validate("CreateChatCompletionResponse", data)
    return data


async def stream_chunks(cloud, **body) -> list[dict]:
    """Every SSE chunk of a stream, each validated against the spec, as the SDK parses them."""
    chunks = []
    stream = await client(cloud).chat.completions.create(model=MODEL, stream=True, **body)
    async for chunk in stream:
        data = chunk.model_dump(exclude_unset=True)
        validate("CreateChatCompletionStreamResponse", data)
        chunks.append(data)
    return chunks


async def test_non_stream_completion(openai_cloud):
    data = await raw_chat(openai_cloud, messages=HI)
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["model"] == MODEL and data["system_fingerprint"].startswith("fp_")
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"]) > 20
    assert data["usage"]["completion_tokens"] == 24
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 24


async def test_sync_client_and_determinism(openai_cloud):
    def call():
        with OpenAI(base_url=openai_cloud.base_url, api_key="sk-test", max_retries=0) as sync:
            return sync.chat.completions.create(model=MODEL, messages=HI)

    first = await asyncio.to_thread(call)
    second = await asyncio.to_thread(call)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id  # ids are per request, the text is per conversation


async def test_stream_matches_non_stream_text(openai_cloud):
    whole = (await raw_chat(openai_cloud, messages=HI))["choices"][0]["message"]["content"]
    chunks = await stream_chunks(openai_cloud, messages=HI)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in chunks[0]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


async def test_stream_with_include_usage(openai_cloud):
    chunks = await stream_chunks(openai_cloud, messages=HI, stream_options={"include_usage": True})
    *body, last = chunks
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 24
    assert all(c["usage"] is None for c in body)


async def test_required_tool_call(openai_cloud):
    data = await raw_chat(openai_cloud, messages=HI, tools=[WEATHER_TOOL], tool_choice="required")
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_weather"
    args = orjson.loads(call["function"]["arguments"])
    assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")


async def test_auto_tool_call_only_when_asked_and_never_after_a_tool_result(openai_cloud):
    plain = await raw_chat(openai_cloud, messages=HI, tools=[WEATHER_TOOL], tool_choice="auto")
    assert plain["choices"][0]["finish_reason"] == "stop"
    ask = [{"role": "user", "content": "What is the weather in Lima?"}]
    called = await raw_chat(openai_cloud, messages=ask, tools=[WEATHER_TOOL])
    call = called["choices"][0]["message"]["tool_calls"][0]
    follow_up = ask + [called["choices"][0]["message"],
                       {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]
    answer = await raw_chat(openai_cloud, messages=follow_up, tools=[WEATHER_TOOL])
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["choices"][0]["message"]["content"]


async def test_named_tool_choice(openai_cloud):
    data = await raw_chat(openai_cloud, messages=HI, tools=[WEATHER_TOOL, CLOCK_TOOL],
                          tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


async def test_streamed_tool_call_deltas_reassemble(openai_cloud):
    messages = [{"role": "user", "content": "weather in Oslo, and the time in the Oslo timezone?"}]
    whole = await raw_chat(openai_cloud, messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL])
    expected = whole["choices"][0]["message"]["tool_calls"]
    assert len(expected) == 2  # parallel calls: both tools were mentioned
    chunks = await stream_chunks(openai_cloud, messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL])
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["tool_calls"][0]["function"]["arguments"] == ""
    assert first["tool_calls"][0]["id"] and first["tool_calls"][0]["type"] == "function"
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or []:
            slot = calls.setdefault(delta["index"], {"id": None, "name": None, "arguments": ""})
            if delta.get("id"):
                assert slot["id"] is None, "id only on the first delta of a call"
                slot["id"] = delta["id"]
                slot["name"] = delta["function"]["name"]
            slot["arguments"] += delta["function"].get("arguments") or ""
    assert [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in expected]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # the SDK's own accumulator agrees
    async with client(openai_cloud).chat.completions.stream(
            model=MODEL, messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL]) as stream:
        final = await stream.get_final_completion()
    assert [c.function.arguments for c in final.choices[0].message.tool_calls] == [
        c["function"]["arguments"] for c in expected]


async def test_n_choices_stream_and_non_stream(openai_cloud):
    data = await raw_chat(openai_cloud, messages=HI, n=2)
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["choices"][0]["message"]["content"] != data["choices"][1]["message"]["content"]
    assert data["usage"]["completion_tokens"] == 48
    chunks = await stream_chunks(openai_cloud, messages=HI, n=2)
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert [texts[0], texts[1]] == [c["message"]["content"] for c in data["choices"]]


async def test_max_tokens_and_stop(openai_cloud):
    full = (await raw_chat(openai_cloud, messages=HI))["choices"][0]["message"]["content"]
    cut = await raw_chat(openai_cloud, messages=HI, max_tokens=5)
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 5
    assert full.startswith(cut["choices"][0]["message"]["content"])
    limited = await raw_chat(openai_cloud, messages=HI, max_completion_tokens=3)
    assert limited["choices"][0]["finish_reason"] == "length"
    word = full.split()[3]
    stopped = await raw_chat(openai_cloud, messages=HI, stop=[word])
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert stopped["choices"][0]["message"]["content"] == full[: full.index(word)]
    streamed = await stream_chunks(openai_cloud, messages=HI, stop=word)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed) == full[: full.index(word)]


async def test_embeddings_float_and_base64(openai_cloud):
    api = client(openai_cloud)
    raw = await api.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a b", "c"],
                                                        encoding_format="float")
    data = orjson.loads(raw.http_response.content)
    validate("CreateEmbeddingResponse", data)
    assert [len(d["embedding"]) for d in data["data"]] == [1536, 1536]
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 0
    default = await api.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])  # asks base64
    assert default.data[0].embedding == pytest.approx(data["data"][0]["embedding"], abs=1e-7)
    small = await api.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=8)
    assert len(small.data[0].embedding) == 8
    tokens = await api.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert tokens.usage.prompt_tokens == 5


async def test_models_list_and_retrieve(openai_cloud):
    api = client(openai_cloud)
    raw = await api.models.with_raw_response.list()
    listing = orjson.loads(raw.http_response.content)
    validate("ListModelsResponse", listing)
    assert [m["id"] for m in listing["data"]] == ["gpt-4o-mini", "text-embedding-3-small"]
    model = await api.models.retrieve("gpt-4o-mini")
    validate("Model", model.model_dump())
    with pytest.raises(openai.NotFoundError):
        await api.models.retrieve("gpt-9")


async def test_auth_failure_and_unknown_model(openai_cloud):
    bad = track(AsyncOpenAI(base_url=openai_cloud.base_url, api_key="sk-wrong", max_retries=0))
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.chat.completions.create(model=MODEL, messages=HI)
    validate("ErrorResponse", info.value.body and {"error": info.value.body})
    assert "sk-wrong" not in str(info.value)  # a key is never echoed back
    with pytest.raises(openai.NotFoundError) as info:
        await client(openai_cloud).chat.completions.create(model="gpt-9", messages=HI)
    assert info.value.code == "model_not_found"


async def test_open_cloud_accepts_any_key_and_model(make_cloud):
    cloud = await make_cloud(name="open")
    api = track(AsyncOpenAI(base_url=cloud.base_url, api_key="anything", max_retries=0))
    reply = await api.chat.completions.create(model="whatever-model", messages=HI)
    assert reply.model == "whatever-model"
    assert (await api.models.list()).data == []
