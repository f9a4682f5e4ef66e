"""The official `anthropic` SDK against the emulator's `anthropic` protocol: if the SDK is happy, the wire is right.

The cloud runs on a background event loop; sync clients call it from the test thread, async clients from the
test's own loop, both over real sockets.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import anthropic
import httpx2
import jsonschema
import pytest

from skyrelay.emulator import CloudSpec, start_cloud

KEY = "sk-ant-test-key"
MODEL = "claude-emulated-1"
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000"
    "1ff5a6b5d2a0000000049454e44ae426082")).decode()
WEATHER = {"name": "get_weather", "description": "Get the current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "unit": {"type": "string", "enum": ["c", "f"]}},
                            "required": ["city"]}}
HELLO = [{"role": "user", "content": "Hello there, tell me something."}]


@pytest.fixture(scope="module")
def cloud(bg):
    spec = CloudSpec(name="anthropic-test", protocol="anthropic", api_key=KEY, models=[MODEL], ttft_ms=1,
                     tokens_per_second=0, seed=7)
    c = bg.run(start_cloud(spec))
    yield c
    bg.run(c.stop())


@pytest.fixture(autouse=True)
def no_faults(bg, cloud):
    bg.call(cloud.clear_faults)
    yield
    bg.call(cloud.clear_faults)


def faults(bg, cloud, plan):
    bg.call(cloud.set_faults, plan)


@pytest.fixture
def client(cloud):
    with anthropic.Anthropic(base_url=cloud.base_url, api_key=KEY, max_retries=0, timeout=5) as c:
        yield c


def raw_post(cloud, path: str, body: dict, headers: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(cloud.base_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


# --- replies ------------------------------------------------------------------------------------------------------

def test_create_returns_a_complete_message(client):
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=HELLO)
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_01")
    assert message.id.startswith("msg_01") and len(message.id) == 28
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert [b.type for b in message.content] == ["text"] and message.content[0].text
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 24
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0


def test_raw_stream_sends_the_documented_events_in_order(client):
    whole = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and kinds.count("content_block_stop") == 1
    assert events[0].message.content == [] and events[0].message.stop_reason is None
    assert events[0].message.usage.input_tokens == whole.usage.input_tokens
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == whole.content[0].text
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == whole.usage.output_tokens


def test_stream_helper_accumulates_the_final_message(client):
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 5 and "".join(pieces) == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 24


async def test_async_client_creates_and_streams(cloud):
    async with anthropic.AsyncAnthropic(base_url=cloud.base_url, api_key=KEY, max_retries=0, timeout=5) as client:
        message = await client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
            final = await stream.get_final_message()
        count = await client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert final.content[0].text == message.content[0].text
    assert count.input_tokens == message.usage.input_tokens


def test_system_max_tokens_and_stop_sequences(client):
    short = client.messages.create(model=MODEL, max_tokens=3, system="Be brief.", messages=HELLO)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    full = client.messages.create(model=MODEL, max_tokens=100, system=[{"type": "text", "text": "Be brief."}],
                                  messages=HELLO)
    word = full.content[0].text.split()[3]
    stopped = client.messages.create(model=MODEL, max_tokens=100, system="Be brief.", messages=HELLO,
                                     stop_sequences=[word])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == word
    assert word not in stopped.content[0].text and full.content[0].text.startswith(stopped.content[0].text)


# --- tools --------------------------------------------------------------------------------------------------------

def test_tool_use_then_tool_result(client):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    message = client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER], messages=ask)
    assert message.stop_reason == "tool_use"
    call = message.content[-1]
    assert call.type == "tool_use" and call.id.startswith("toolu_01") and call.name == "get_weather"
    jsonschema.validate(call.input, WEATHER["input_schema"])
    answer = [*ask, {"role": "assistant", "content": message.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]}]
    reply = client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER], messages=answer)
    assert reply.stop_reason == "end_turn" and reply.content[0].type == "text"


def test_streamed_tool_input_arrives_as_json_fragments(client):
    ask = [{"role": "user", "content": "Any news?"}]
    whole = client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER], messages=ask,
                                   tool_choice={"type": "any"})
    events = list(client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER], messages=ask,
                                         tool_choice={"type": "any"}, stream=True))
    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert fragments[0] == "" and len(fragments) > 2
    assert json.loads("".join(fragments)) == whole.content[0].input
    with client.messages.stream(model=MODEL, max_tokens=200, tools=[WEATHER], messages=ask,
                                tool_choice={"type": "any"}) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == whole.content[0].input and final.stop_reason == "tool_use"


def test_tool_choice_named_and_none(client):
    other = {"name": "lookup", "description": "Look up a word", "input_schema": {"type": "object", "properties": {
        "word": {"type": "string"}}}}
    named = client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER, other], messages=HELLO,
                                   tool_choice={"type": "tool", "name": "lookup"})
    assert [b.name for b in named.content if b.type == "tool_use"] == ["lookup"]
    never = client.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER],
                                   messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                   tool_choice={"type": "none"})
    assert never.stop_reason == "end_turn" and never.content[0].type == "text"


# --- content ------------------------------------------------------------------------------------------------------

def test_image_blocks_are_checked_and_counted(client):
    text_only = client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with_image = client.messages.create(model=MODEL, max_tokens=10, messages=[
        {"role": "user", "content": [image, {"type": "text", "text": HELLO[0]["content"]}]}])
    assert with_image.usage.input_tokens > text_only.usage.input_tokens
    wrong = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}
    with pytest.raises(anthropic.BadRequestError, match="appears to be a image/png image"):
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [wrong]}])
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [url]}])


def test_structured_output_follows_the_schema(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    message = client.messages.create(model=MODEL, max_tokens=200, messages=HELLO,
                                     output_config={"format": {"type": "json_schema", "schema": schema}})
    jsonschema.validate(json.loads(message.content[0].text), schema)


def test_thinking_opens_the_reply(client):
    message = client.messages.create(model=MODEL, max_tokens=2000, messages=HELLO,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in message.content] == ["thinking", "text"] and message.content[0].signature
    with client.messages.stream(model=MODEL, max_tokens=2000, messages=HELLO,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == message.content[0].thinking and final.content[0].signature


def test_models_are_listed(client):
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


# --- validation ---------------------------------------------------------------------------------------------------

def test_missing_max_tokens_is_a_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body={"model": MODEL, "messages": HELLO}, cast_to=anthropic.types.Message)
    assert caught.value.type == "invalid_request_error" and "max_tokens: Field required" in str(caught.value)


@pytest.mark.parametrize("change, expected", [
    ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ({"frequency": 1}, "frequency: Extra inputs are not permitted"),
    ({"messages": []}, "at least 1 item"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role: Input should be 'user' or 'assistant'"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}, "non-empty content"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]}]},
     "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]},
     "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"),
    ({"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}, "String should match pattern"),
    ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER]}, "Tool 'nope' not found"),
])
def test_invalid_requests_are_refused_like_the_api(client, change, expected):
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO, **change}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body=body, cast_to=anthropic.types.Message)
    assert expected in caught.value.api_message


def test_consecutive_user_turns_are_merged(client):
    message = client.messages.create(model=MODEL, max_tokens=10, messages=[
        {"role": "user", "content": "First."}, {"role": "user", "content": "Second."}])
    assert message.stop_reason == "max_tokens"


def test_headers_version_and_both_auth_styles(cloud):
    body = {"model": MODEL, "max_tokens": 5, "messages": HELLO}
    status, _, answer = raw_post(cloud, "/v1/messages", body, {"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    assert status == 200 and answer["type"] == "message"
    status, headers, answer = raw_post(cloud, "/v1/messages", body, {"x-api-key": KEY})
    assert status == 400 and answer["error"]["message"] == "anthropic-version: header is required"
    assert answer["type"] == "error" and answer["request_id"] == headers["request-id"]
    status, _, answer = raw_post(cloud, "/v1/messages", body, {"x-api-key": "wrong", "anthropic-version": "2023-06-01"})
    assert status == 401 and answer["error"]["type"] == "authentication_error" and "wrong" not in json.dumps(answer)


def test_wrong_key_and_unknown_model(cloud, client):
    with anthropic.Anthropic(base_url=cloud.base_url, api_key="nope", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError, match="model: claude-nope"):
        client.messages.create(model="claude-nope", max_tokens=10, messages=HELLO)


# --- faults -------------------------------------------------------------------------------------------------------

def test_rate_limit_carries_retry_after_and_the_sdk_retries(bg, cloud, client):
    faults(bg, cloud, [{"status": 429, "at": [1], "retry_after": 1}])
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "1" and caught.value.type == "rate_limit_error"
    faults(bg, cloud, [{"status": 429, "at": [1], "retry_after": 1}])
    started = time.monotonic()
    message = client.with_options(max_retries=1).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert message.type == "message" and time.monotonic() - started >= 0.9


@pytest.mark.parametrize("status, error", [(500, anthropic.InternalServerError), (529, anthropic.OverloadedError),
                                           (503, anthropic.ServiceUnavailableError)])
def test_server_errors_map_to_the_sdk_classes(bg, cloud, client, status, error):
    faults(bg, cloud, [{"status": status}])
    with pytest.raises(error) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == status and caught.value.request_id.startswith("req_01")


def test_hang_reset_and_slow(bg, cloud, client):
    faults(bg, cloud, [{"kind": "hang"}])
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.3).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    faults(bg, cloud, [{"kind": "reset"}])
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    faults(bg, cloud, [{"kind": "slow", "extra_ms": 300}])
    started = time.monotonic()
    client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert time.monotonic() - started >= 0.28


def test_cut_stream_breaks_the_stream(bg, cloud, client):
    faults(bg, cloud, [{"kind": "cut_stream", "after_chunks": 4}])
    seen = []
    with pytest.raises(httpx2.RemoteProtocolError):  # the SDK lets the transport's error through mid-stream
        for event in client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True):
            seen.append(event.type)
    # four SSE events went out; the SDK hides the ping among them
    assert seen == ["message_start", "content_block_start", "content_block_delta"]


@pytest.mark.parametrize("target", ["prompt", "output"])
def test_content_filter_is_a_refusal(bg, cloud, client, target):
    faults(bg, cloud, [{"kind": "content_filter", "target": target}])
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert message.stop_reason == "refusal"
    assert (message.content == []) == (target == "prompt")


def test_stream_errors_event_fails_a_stream_after_its_200(bg):
    spec = CloudSpec(name="overloaded", protocol="anthropic", ttft_ms=1, tokens_per_second=0,
                     options={"stream_errors": "event"}, faults=[{"status": 529}])
    cloud = bg.run(start_cloud(spec))
    try:
        with anthropic.Anthropic(base_url=cloud.base_url, api_key=KEY, max_retries=0) as client:
            seen = []
            with pytest.raises(anthropic.APIStatusError) as caught:
                for event in client.messages.create(model=MODEL, max_tokens=10, messages=HELLO, stream=True):
                    seen.append(event.type)
            assert seen == ["message_start"] and caught.value.type == "overloaded_error"
            with pytest.raises(anthropic.OverloadedError):  # not streamed: the plain 529 answer
                client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    finally:
        bg.run(cloud.stop())


def test_unknown_options_are_refused():
    from skyrelay.emulator import EmulatedCloud, EmulatorConfigError

    with pytest.raises(EmulatorConfigError, match="unknown key"):
        EmulatedCloud(CloudSpec(name="x", protocol="anthropic", options={"stream_error": "event"}))
    with pytest.raises(EmulatorConfigError, match="stream_errors"):
        EmulatedCloud(CloudSpec(name="x", protocol="anthropic", options={"stream_errors": "frame"}))
