"""OpenAI's Responses API (`POST /v1/responses`, what Codex CLI speaks) through the canonical core to every kind of
cloud: the official `openai` SDK's `client.responses` (whole, streamed, the `responses.stream` helper, sync and
async) gets text, function-call round trips and JSON-schema answers, and every answer and every stream event the
gateway renders matches the Responses schemas of OpenAI's own OpenAPI document."""

from __future__ import annotations

import asyncio
import json

import httpx2 as httpx
import openai
import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, start_stack

KEY_ID, SECRET = "AKIDRESPONSES", "responses-secret"
TIMEOUTS = {"connect": 1, "first_byte": 3, "total": 10}
CLOUDS = [
    {"name": "openai", "protocol": "openai"},
    {"name": "aws", "protocol": "bedrock", "api_key": None,
     "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}},
    {"name": "anthropic", "protocol": "anthropic"},
    {"name": "google", "protocol": "gemini"},
]
KINDS = ["openai", "bedrock", "anthropic", "gemini"]
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK_WEATHER = "What is the weather in Lisbon?"
CITY_FORMAT = {"format": {"type": "json_schema", "name": "city", "strict": True, "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}


def groups(clouds) -> dict:
    common = {"api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {
        "openai": {"deployments": [{"name": "openai-kind", "kind": "openai", "base_url": clouds["openai"].base_url,
                                    "model": "gpt-4o-mini", **common}]},
        "bedrock": {"deployments": [{"name": "bedrock-useast1", "kind": "bedrock", "base_url": clouds["aws"].base_url,
                                     "region": "us-east-1", "model": "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                                     "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
                                     "timeouts": TIMEOUTS}]},
        "anthropic": {"deployments": [{"name": "anthropic-direct", "kind": "anthropic",
                                       "base_url": clouds["anthropic"].base_url, "model": "claude-3-5-sonnet-latest",
                                       **common}]},
        "gemini": {"deployments": [{"name": "gemini-global", "kind": "gemini", "base_url": clouds["google"].base_url,
                                    "model": "gemini-2.0-flash", **common}]},
    }


@pytest.fixture(scope="module")
def clouds(bg):
    stack = start_stack(bg, CLOUDS, groups)
    yield stack
    stack.close()


def post(stack, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/responses", json=body, timeout=10,
                      headers={"authorization": f"Bearer {stack.key}"}, **kw)


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in lines:
            events.append((lines.get("event"), json.loads(lines["data"])))
    return events


def validated_stream(stack, body: dict) -> list[dict]:
    """A streamed answer's events, each checked against the spec, its SSE name and its place in the sequence."""
    resp = post(stack, {**body, "stream": True})
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    for i, (name, event) in enumerate(events):
        validate("ResponseStreamEvent", event)
        assert name == event["type"] and event["sequence_number"] == i
    return [event for _, event in events]


@pytest.mark.parametrize("kind", KINDS)
def test_text_whole_and_streamed_with_the_sdk(clouds, kind):
    client = clouds.openai()
    raw = client.responses.with_raw_response.create(model=kind, input="hello", instructions="Be brief.",
                                                    max_output_tokens=40, store=False)
    response = raw.parse()
    assert raw.headers["x-skyrelay-model-group"] == kind
    assert response.object == "response" and response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text and response.output[0].type == "message"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    validate("Response", raw.http_response.json())

    events = list(client.responses.create(model=kind, input="hello", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and events[-1].type == "response.completed"
    assert events[-1].response.output_text == text
    assert events[-1].response.usage.output_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_function_call_round_trip(clouds, kind):
    client = clouds.openai()
    first = client.responses.create(model=kind, input=ASK_WEATHER, tools=[WEATHER], tool_choice="required")
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments) and call.call_id
    history = [{"role": "user", "content": ASK_WEATHER}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature_c": 21}'}]
    raw = client.responses.with_raw_response.create(model=kind, input=history, tools=[WEATHER])
    assert raw.parse().output_text
    validate("Response", raw.http_response.json())


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_function_call_event_order(clouds, kind):
    events = validated_stream(clouds, {"model": kind, "input": ASK_WEATHER, "tools": [WEATHER],
                                       "tool_choice": {"type": "function", "name": "get_weather"}})
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    added = kinds.index("response.function_call_arguments.done")
    assert "response.function_call_arguments.delta" in kinds[:added]
    done = events[added]
    assert done["name"] == "get_weather" and "city" in json.loads(done["arguments"])
    completed = events[-1]["response"]
    assert [item["type"] for item in completed["output"]][-1] == "function_call"
    assert completed["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_text_event_order(clouds, kind):
    kinds = [e["type"] for e in validated_stream(clouds, {"model": kind, "input": "hello"})]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 0
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]


@pytest.mark.parametrize("kind", ["gemini"])  # the cloud whose emulator answers a JSON schema with JSON
def test_json_schema_format(clouds, kind):
    raw = post(clouds, {"model": kind, "input": "Name a city as JSON.", "text": CITY_FORMAT})
    assert raw.status_code == 200, raw.text
    validate("Response", raw.json())
    text = raw.json()["output"][0]["content"][0]["text"]
    assert isinstance(json.loads(text), dict)


def test_the_stream_helper_and_the_async_client(clouds):
    client = clouds.openai()
    with client.responses.stream(model="anthropic", input="hello") as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert streamed and final.output_text == streamed

    async def run():
        aclient = clouds.async_openai()
        whole = await aclient.responses.create(model="bedrock", input="hello")
        events = [e async for e in await aclient.responses.create(model="gemini", input="hello", stream=True)]
        await aclient.close()
        return whole, events

    whole, events = asyncio.run(run())
    assert whole.output_text and whole.status == "completed"
    assert events[-1].type == "response.completed" and events[-1].response.output_text


def test_max_output_tokens_reached_is_an_incomplete_response(clouds):
    """Through the canonical core (OpenAI itself refuses a cap under 16, and the emulated replies are shorter)."""
    raw = post(clouds, {"model": "anthropic", "input": "hello", "max_output_tokens": 2})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    validate("Response", body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    events = validated_stream(clouds, {"model": "anthropic", "input": "hello", "max_output_tokens": 2})
    assert events[-1]["type"] == "response.incomplete"


def test_store_true_is_answered_stored_and_a_cache_key_named_where_dropped(clouds):
    raw = post(clouds, {"model": "anthropic", "input": "hello", "store": True, "prompt_cache_key": "k1"})
    assert raw.status_code == 200, raw.text
    assert raw.headers["x-skyrelay-dropped-params"] == "prompt_cache_key"
    assert raw.json()["store"] is True
    plain = post(clouds, {"model": "anthropic", "input": "hello", "store": False})
    assert "x-skyrelay-dropped-params" not in plain.headers


@pytest.mark.parametrize("body, param", [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": []}, "input"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"no_such_field": 1}, "no_such_field"),
])
def test_what_cannot_be_served_is_a_400_naming_the_parameter(clouds, body, param):
    """Through the canonical core (an Anthropic deployment); an OpenAI one forwards the body to its own API."""
    raw = post(clouds, {"model": "anthropic", "input": "hello", **body})
    assert raw.status_code == 400, raw.text
    validate("ErrorResponse", raw.json())
    assert raw.json()["error"]["param"] == param
    with pytest.raises(openai.BadRequestError):
        clouds.openai().responses.create(model="anthropic", input=body.pop("input", "hello"), extra_body=body)


@pytest.mark.parametrize("kind, cloud", [("anthropic", "anthropic"), ("openai", "openai")])
def test_a_stream_broken_after_its_start_ends_with_a_failure_event(clouds, kind, cloud):
    """Rendered by the gateway: response.failed; passed through from the cloud's own events: an error event."""
    clouds.set_faults(cloud, [{"kind": "cut_stream", "after_chunks": 6, "ending": "close"}])
    try:
        events = validated_stream(clouds, {"model": kind, "input": "hello"})
        if kind == "anthropic":
            assert events[-1]["type"] == "response.failed"
            assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]
        else:
            assert events[-1]["type"] == "error" and events[-1]["message"]
        with pytest.raises((RuntimeError, openai.APIError)), clouds.openai().responses.stream(
                model=kind, input="hi") as stream:
            stream.get_final_response()  # the helper raises: no response.completed
    finally:
        clouds.clear_faults(cloud)


def test_reasoning_items_are_left_out_and_named_verbosity_goes_where_it_is_honoured(clouds):
    history = [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
               {"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]
    raw = post(clouds, {"model": "anthropic", "input": history, "include": ["reasoning.encrypted_content"]})
    assert raw.status_code == 200, raw.text
    assert raw.headers["x-skyrelay-dropped-params"] == "input.reasoning"
    forwarded = post(clouds, {"model": "openai", "input": "hello", "text": {"verbosity": "low"}})
    assert forwarded.status_code == 200 and "x-skyrelay-dropped-params" not in forwarded.headers
    refused = post(clouds, {"model": "anthropic", "input": "hello", "text": {"verbosity": "low"}})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "verbosity"


AGENTS = {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
    {"type": "function", "name": "spawn", "description": "Start a sub-agent", "strict": False,
     "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}}]}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_namespaced_tool_group_is_called_by_namespace_and_name(clouds, kind):
    """Codex CLI sends its sub-agent tools as a `namespace` group; the clouds see one function per member."""
    body = {"model": kind, "input": "Start a sub-agent", "tools": [AGENTS],
            "tool_choice": {"type": "function", "namespace": "agents", "name": "spawn"},
            "client_metadata": {"session_id": "s1"}}
    raw = post(clouds, body)
    assert raw.status_code == 200, raw.text
    validate("Response", raw.json())
    if kind != "openai":  # forwarded to OpenAI's own API, which takes it
        assert raw.headers["x-skyrelay-dropped-params"].endswith("client_metadata")
    call = next(item for item in raw.json()["output"] if item["type"] == "function_call")
    assert (call["namespace"], call["name"]) == ("agents", "spawn")
    done = next(e for e in validated_stream(clouds, body) if e["type"] == "response.output_item.done")
    assert (done["item"]["namespace"], done["item"]["name"]) == ("agents", "spawn")
    history = [{"role": "user", "content": "Start a sub-agent"}, call,
               {"type": "function_call_output", "call_id": call["call_id"], "output": "started"}]
    again = post(clouds, {"model": kind, "input": history, "tools": [AGENTS]})
    assert again.status_code == 200, again.text


def test_a_websocket_handshake_is_answered_426_for_an_http_fallback(clouds):
    """Codex CLI's own provider tries a Responses WebSocket first; 426 makes it fall back to POST at once."""
    raw = httpx.get(f"{clouds.base_url}/responses", timeout=10, headers={
        "authorization": f"Bearer {clouds.key}", "connection": "Upgrade", "upgrade": "websocket",
        "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert raw.status_code == 426
    validate("ErrorResponse", raw.json())
    assert raw.json()["error"]["code"] == "websocket_unsupported"
