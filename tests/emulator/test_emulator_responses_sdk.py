"""The official openai SDK's `client.responses` directly against the `openai` and `azure` emulated clouds: whole
and streamed (sync and async), function calls, JSON-schema output, reasoning with encrypted content handed back,
cached and reasoning tokens in usage, stored responses (`previous_response_id`, retrieve, delete, input items).
Every body and every stream event is checked against the Responses schemas of OpenAI's OpenAPI document."""

from __future__ import annotations

import json

import openai
import orjson
import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI, OpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

MODEL = "gpt-4o-mini"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CITY = {"format": {"type": "json_schema", "name": "city", "strict": True, "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}}
LONG_SYSTEM = "You are a careful assistant. " * 200  # past the 1024-token minimum of the prefix cache


def client(cloud) -> AsyncOpenAI:
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="sk-test", max_retries=0))


async def created(cloud, **body) -> dict:
    raw = await client(cloud).responses.with_raw_response.create(**{"model": MODEL, **body})
    data = orjson.loads(raw.http_response.content)
    validate("Response", data)
    return data


async def streamed(api, **body) -> list[dict]:
    """The stream's events as sent, each checked against the spec and its SSE name."""
    events = []
    async with api.responses.with_streaming_response.create(stream=True, **{"model": MODEL, **body}) as raw:
        text = (await raw.http_response.aread()).decode()
    for block in text.strip().split("\n\n"):
        name, data = (line.split(": ", 1)[1] for line in block.split("\n"))
        event = json.loads(data)
        validate("ResponseStreamEvent", event)
        assert event["type"] == name
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


async def test_text_whole_and_streamed_see_the_same_answer(openai_cloud):
    whole = await created(openai_cloud, input="hello", instructions="Be brief.", store=False)
    assert whole["status"] == "completed" and whole["store"] is False and whole["id"].startswith("resp_")
    assert whole["output"][0]["type"] == "message"
    usage = whole["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    events = await streamed(client(openai_cloud), input="hello", instructions="Be brief.")
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["response"]["output"][0]["content"][0]["text"] == whole["output"][0]["content"][0]["text"]


def test_the_sync_client_and_the_stream_helper(bg, make_cloud):
    cloud = bg.run(make_cloud(name="oai", protocol="openai", api_key="sk-test"))
    sync = OpenAI(base_url=cloud.base_url, api_key="sk-test", max_retries=0)
    try:
        reply = sync.responses.create(model=MODEL, input="hello")
        with sync.responses.stream(model=MODEL, input="hello") as stream:
            text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            final = stream.get_final_response()
    finally:
        sync.close()
        bg.run(cloud.stop())
    assert reply.output_text and text == final.output_text == reply.output_text


async def test_a_function_call_and_its_output(openai_cloud):
    api = client(openai_cloud)
    first = await api.responses.create(model=MODEL, input="What is the weather in Lisbon?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments) and call.call_id.startswith("call_")
    events = await streamed(api, input="What is the weather in Lisbon?", tools=[WEATHER],
                            tool_choice={"type": "function", "name": "get_weather"})
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert json.loads(done["arguments"])["city"]
    follow = await created(openai_cloud, tools=[WEATHER], store=False, input=[
        {"role": "user", "content": "What is the weather in Lisbon?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature_c": 21}'}])
    assert follow["output"][0]["type"] == "message"
    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        await api.responses.create(model=MODEL, input=[
            {"type": "function_call_output", "call_id": "call_nowhere", "output": "21"}])


async def test_json_schema_output_is_json(openai_cloud):
    data = await created(openai_cloud, input="Name a city.", text=CITY)
    assert isinstance(json.loads(data["output"][0]["content"][0]["text"])["city"], str)


async def test_reasoning_items_and_their_encrypted_content_round_trip(make_cloud):
    cloud = await make_cloud(name="oai", protocol="openai", api_key="sk-test")
    other = await make_cloud(name="elsewhere", protocol="openai", api_key="sk-test")
    reasoning = {"effort": "medium", "summary": "auto"}
    first = await created(cloud, input="Think, then answer.", reasoning=reasoning, store=False,
                          include=["reasoning.encrypted_content"])
    item = first["output"][0]
    assert item["type"] == "reasoning" and item["encrypted_content"] and item["summary"][0]["text"]
    assert first["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    history = [{"role": "user", "content": "Think, then answer."}, item,
               {"role": "assistant", "content": first["output"][1]["content"][0]["text"]},
               {"role": "user", "content": "And then?"}]
    again = await created(cloud, input=history, reasoning=reasoning, store=False)
    assert again["status"] == "completed"
    with pytest.raises(openai.BadRequestError, match="could not be verified"):
        await client(other).responses.create(model=MODEL, input=history, store=False)  # another cloud's item
    tampered = [*history[:1], {**item, "encrypted_content": item["encrypted_content"][:-4] + "AAAA"}, *history[2:]]
    with pytest.raises(openai.BadRequestError, match="could not be verified"):
        await client(cloud).responses.create(model=MODEL, input=tampered, store=False)
    events = await streamed(client(cloud), input="Think, then answer.", reasoning=reasoning)
    kinds = [e["type"] for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    assert "response.reasoning_summary_text.delta" in kinds and "response.reasoning_summary_text.done" in kinds


async def test_cached_tokens_are_reported_on_a_repeated_prefix(make_cloud):
    cloud = await make_cloud(name="oai", protocol="openai", api_key="sk-test", prompt_cache={"ttl_s": 60})
    first = await created(cloud, instructions=LONG_SYSTEM, input="one", store=False)
    second = await created(cloud, instructions=LONG_SYSTEM, input="two", store=False, prompt_cache_key="k")
    assert first["usage"]["input_tokens_details"]["cached_tokens"] == 0
    cached = second["usage"]["input_tokens_details"]["cached_tokens"]
    assert 1024 <= cached < second["usage"]["input_tokens"]


async def test_stored_responses_continue_and_can_be_fetched_and_deleted(openai_cloud):
    api = client(openai_cloud)
    first = await api.responses.create(model=MODEL, input="My name is Ada.")
    assert first.store is True  # OpenAI's default
    follow = await api.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert follow.previous_response_id == first.id
    fresh = await api.responses.create(model=MODEL, input="What is my name?")
    assert follow.output_text != fresh.output_text  # the stored conversation shaped the answer
    fetched = await api.responses.with_raw_response.retrieve(first.id)
    validate("Response", orjson.loads(fetched.http_response.content))
    assert fetched.parse().output_text == first.output_text
    items = await api.responses.input_items.list(follow.id)
    assert [i.content[0].text for i in items.data] == ["What is my name?"]
    await api.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError, match="not found"):
        await api.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError, match="Previous response"):
        await api.responses.create(model=MODEL, input="x", previous_response_id=first.id)
    unstored = await api.responses.create(model=MODEL, input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        await api.responses.retrieve(unstored.id)


@pytest.mark.parametrize("body, param", [
    ({"input": "hi", "extra_body": {"bogus": 1}}, "bogus"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "max_output_tokens": 8}, "max_output_tokens"),  # OpenAI's floor is 16
    ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
])
async def test_bad_requests_are_openai_400s(openai_cloud, body, param):
    with pytest.raises(openai.BadRequestError) as caught:
        await client(openai_cloud).responses.create(model=MODEL, **body)
    validate("ErrorResponse", caught.value.response.json())
    assert caught.value.response.json()["error"]["param"] == param


@pytest.mark.parametrize("path", ["v1", "dated"])
async def test_azure_serves_responses_at_its_v1_and_dated_paths(make_cloud, path):
    cloud = await make_cloud(name="az", protocol="azure", api_key="az-key",
                             deployments=[{"name": "chat-dep", "model": "gpt-4o"}])
    if path == "v1":
        api = track(AsyncOpenAI(base_url=f"{cloud.base_url}/openai/v1/", api_key="az-key", max_retries=0))
    else:
        api = track(AsyncAzureOpenAI(azure_endpoint=cloud.base_url, api_key="az-key",
                                     api_version="2025-03-01-preview", max_retries=0))
    raw = await api.responses.with_raw_response.create(model="chat-dep", input="hello")
    body = orjson.loads(raw.http_response.content)
    validate("Response", body)
    assert body["model"] == "gpt-4o" and raw.headers.get("apim-request-id")
    events = await streamed(api, model="chat-dep", input="hello")
    assert events[-1]["type"] == "response.completed"
    assert (await api.responses.retrieve(body["id"])).id == body["id"]
    with pytest.raises(openai.NotFoundError):
        await api.responses.create(model="no-such-deployment", input="hello")
    paths = [r["path"] for r in cloud.recent_requests]
    assert all(p.startswith("/openai/v1/responses" if path == "v1" else "/openai/responses") for p in paths)


async def test_azure_refuses_a_dated_api_version_older_than_the_responses_api(make_cloud):
    cloud = await make_cloud(name="az", protocol="azure", api_key="az-key")
    api = track(AsyncAzureOpenAI(azure_endpoint=cloud.base_url, api_key="az-key", api_version="2024-10-21",
                                 max_retries=0))
    with pytest.raises(openai.BadRequestError, match="API version not supported"):
        await api.responses.create(model="d1", input="hello")
