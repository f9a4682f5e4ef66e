"""The inbound Anthropic Messages protocol: parse (Anthropic -> canonical), render (canonical -> Anthropic).

Request and response payloads follow the examples of Anthropic's Messages API reference (weather tools, base64
and URL images, tool_result turns, prefill); the expected canonical forms are the OpenAI chat shapes.
"""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatChunk, ChatRequest, ChatResponse, Choice, ToolCall, ToolCallDelta, Usage
from skyrelay.protocols import anthropic as protocol

WEATHER_TOOL = {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string",
                                                                   "description": "The city and state"}},
                     "required": ["location"]},
}
WEATHER_FUNCTION = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "parameters": WEATHER_TOOL["input_schema"]}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def body(**fields) -> bytes:
    data = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}
    data.update(fields)
    return orjson.dumps({k: v for k, v in data.items() if v is not None})


# --- parse ---------------------------------------------------------------------------------------------------------

PARSE_CASES = {
    "plain string content": (
        {"messages": [{"role": "user", "content": "Hello, world"}]},
        [{"role": "user", "content": "Hello, world"}],
    ),
    "system string": (
        {"system": "You are a seasoned data scientist."},
        [{"role": "system", "content": "You are a seasoned data scientist."}, {"role": "user", "content": "Hello"}],
    ),
    "system text blocks": (
        {"system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}]},
        [{"role": "system", "content": "Be terse.\nAnswer in French."}, {"role": "user", "content": "Hello"}],
    ),
    "cache breakpoints kept on system, user and tool-result parts, and tools": (
        {"system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French.",
                                                             "cache_control": {"type": "ephemeral"}}],
         "messages": [
             {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok",
                                           "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]},
        [{"role": "system", "content": [{"type": "text", "text": "Be terse."},
                                        {"type": "text", "text": "Answer in French.",
                                         "cache_control": {"type": "ephemeral"}}]},
         {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
         {"role": "assistant", "content": None,
          "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "t1",
          "content": [{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
    ),
    "multi-turn with prefill": (
        {"messages": [
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
            {"role": "user", "content": "What's the Greek name for Sun? (A) Sol (B) Helios (C) Sun"},
            {"role": "assistant", "content": [{"type": "text", "text": "The best answer is ("}]},
        ]},
        [{"role": "user", "content": "Hello there."},
         {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
         {"role": "user", "content": "What's the Greek name for Sun? (A) Sol (B) Helios (C) Sun"},
         {"role": "assistant", "content": "The best answer is ("}],
    ),
    "single text block becomes a string": (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
        [{"role": "user", "content": "Hi"}],
    ),
    "base64 image": (
        {"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is in the above image?"}]}]},
        [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "What is in the above image?"}]}],
    ),
    "url image": (
        {"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/ant.jpg"}},
            {"type": "text", "text": "Describe this image."}]}]},
        [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/ant.jpg"}},
            {"type": "text", "text": "Describe this image."}]}],
    ),
    "tool use round trip": (
        {"messages": [
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check the current weather."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                 "content": "15 degrees"}]},
        ]},
        [{"role": "user", "content": "What's the weather like in San Francisco?"},
         {"role": "assistant", "content": "I'll check the current weather.", "tool_calls": [
             {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"location":"San Francisco, CA"}'}}]},
         {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}],
    ),
    "tool results come before the text of their turn; text blocks joined; errors flagged": (
        {"messages": [
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "b", "input": {"x": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": True},
                {"type": "text", "text": "Now summarise."}]},
        ]},
        [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "t2", "type": "function", "function": {"name": "b", "arguments": '{"x":1}'}}]},
         {"role": "tool", "tool_call_id": "t1", "content": "line 1\nline 2"},
         {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
         {"role": "user", "content": "Now summarise."}],
    ),
    "earlier thinking blocks are left out, as Anthropic does": (
        {"messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me think...", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": "Again"}]},
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "Again"}],
    ),
    "a system-role message in the list": (
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    ),
}


@pytest.mark.parametrize("fields,expected", PARSE_CASES.values(), ids=PARSE_CASES.keys())
def test_parse_messages(fields, expected):
    req = protocol.parse_messages(body(**fields))
    assert req.messages == expected
    assert req.raw is None
    assert req.model == "claude-sonnet-4-5"
    assert req.max_tokens == 1024


def test_parse_sampling_and_options():
    req = protocol.parse_messages(body(
        stop_sequences=["\n\nHuman:", "END"], temperature=0.5, top_p=0.9, top_k=40, stream=True,
        metadata={"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"}, service_tier="auto",
        cache_control={"type": "ephemeral"}, thinking={"type": "disabled"}))
    assert req.stop == ["\n\nHuman:", "END"]
    assert (req.temperature, req.top_p) == (0.5, 0.9)
    assert req.stream is True and req.include_usage is True
    assert req.extra == {"top_k": 40, "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"}


@pytest.mark.parametrize("fields, hints", [
    ({}, ()),
    ({"service_tier": "auto", "cache_control": {"type": "ephemeral"}}, ("service_tier", "cache_control")),
    ({"system": [{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}]}, ("cache_control",)),
    ({"context_management": {"edits": []}, "system": [{"type": "text", "text": "x", "cache_control": {}}]},
     ("context_management", "cache_control")),
])
def test_the_hints_other_clouds_drop_are_found_when_first_asked_for(fields, hints):
    native = protocol.read_messages(body(**fields)).anthropic
    assert native.found_hints is None  # an Anthropic-family cloud forwards them and never asks
    assert native.hints == hints and native.hints is native.found_hints


def test_a_count_tokens_body_names_no_hints():
    assert protocol.read_count_tokens(body(cache_control={"type": "ephemeral"})).anthropic.hints == ()


TOOL_CHOICES = {
    "auto": ({"type": "auto"}, "auto", {}),
    "any": ({"type": "any"}, "required", {}),
    "none": ({"type": "none"}, "none", {}),
    "tool": ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, {}),
    "no parallel": ({"type": "auto", "disable_parallel_tool_use": True}, "auto", {"parallel_tool_calls": False}),
}


@pytest.mark.parametrize("choice,expected,extra", TOOL_CHOICES.values(), ids=TOOL_CHOICES.keys())
def test_parse_tools_and_tool_choice(choice, expected, extra):
    req = protocol.parse_messages(body(tools=[WEATHER_TOOL], tool_choice=choice))
    assert req.tools == [WEATHER_FUNCTION]
    assert req.tool_choice == expected
    assert req.extra == extra


def test_parse_structured_output():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    req = protocol.parse_messages(body(output_config={"format": {"type": "json_schema", "schema": schema},
                                                      "effort": "high"}))
    assert req.response_format == {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": schema, "strict": True}}


def test_parse_count_tokens_needs_no_max_tokens():
    req = protocol.parse_count_tokens(orjson.dumps({
        "model": "m", "system": "You are a scientist", "messages": [{"role": "user", "content": "Hello, Claude"}]}))
    assert req.messages[0] == {"role": "system", "content": "You are a scientist"}
    assert req.max_tokens is None


REJECTED = {
    "missing max_tokens": ({"max_tokens": None}, "max_tokens: Field required", "max_tokens"),
    "max_tokens string": ({"max_tokens": "10"}, "max_tokens: must be of type integer", "max_tokens"),
    "max_tokens zero": ({"max_tokens": 0}, "max_tokens: must be at least 1", "max_tokens"),
    "missing messages": ({"messages": None}, "messages: Field required", "messages"),
    "empty messages": ({"messages": []}, "messages: at least one message is required", "messages"),
    "bad role": ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role: must be", "messages[0].role"),
    "content number": ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content: must be",
                       "messages[0].content"),
    "empty user content": ({"messages": [{"role": "user", "content": []}]}, "at least one content block",
                           "messages[0].content"),
    "document block": (
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64",
                                                                                    "media_type": "application/pdf",
                                                                                    "data": "JVBE"}}]}]},
        "content blocks of type 'document' are not supported", "messages[0].content[0].type"),
    "image media type": (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/bmp", "data": "Qk0="}}]}]},
        "media_type: must be one of", "messages[0].content[0].source.media_type"),
    "file image": (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file",
                                                                                 "file_id": "file_1"}}]}]},
        "file sources (the Files API) are not supported", "messages[0].content[0].source"),
    "image in tool_result": (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]},
        "'image' blocks inside a tool_result are not supported", "messages[0].content[0].content[0]"),
    "tool_use without id": (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "a", "input": {}}]}]},
        "messages[0].content[0].id: missing", "messages[0].content[0].id"),
    "server tool": ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
                    "the server tool 'web_search_20250305' is not supported", "tools[0].type"),
    "tool without schema": ({"tools": [{"name": "a"}]}, "tools[0].input_schema: missing", "tools[0].input_schema"),
    "tool_choice type": ({"tool_choice": {"type": "some"}}, "tool_choice.type: must be one of", "tool_choice.type"),
    "thinking budget too small": ({"thinking": {"type": "enabled", "budget_tokens": 100}},
                                  "thinking.budget_tokens: must be an integer of at least 1024",
                                  "thinking.budget_tokens"),
    "effort unknown": ({"output_config": {"effort": "extreme"}}, "output_config.effort: must be one of",
                       "output_config.effort"),
    "unknown parameter": ({"mcp_servers": []}, "mcp_servers: this parameter is not supported", "mcp_servers"),
    "temperature bool": ({"temperature": True}, "temperature: must be of type number", "temperature"),
    "stop_sequences": ({"stop_sequences": "END"}, "stop_sequences: must be of type array", "stop_sequences"),
    "system number": ({"system": 1}, "system: must be a string or an array of text blocks", "system"),
}


@pytest.mark.parametrize("fields,message,param", REJECTED.values(), ids=REJECTED.keys())
def test_parse_rejects_with_a_precise_400(fields, message, param):
    with pytest.raises(errors.InvalidRequest) as info:
        protocol.parse_messages(body(**fields))
    assert message in info.value.message
    assert info.value.param == param
    assert info.value.status == 400


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]"])
def test_parse_rejects_bodies_that_are_not_objects(raw):
    with pytest.raises(errors.InvalidRequest):
        protocol.parse_messages(raw)


# --- render a whole message ----------------------------------------------------------------------------------------


def response(content=None, tool_calls=(), finish="stop", usage=None, refusal=None, id="chatcmpl-1"):
    return ChatResponse(id=id, model="gpt-4o-mini-2024-07-18", created=1, raw=None,
                        choices=[Choice(content=content, tool_calls=list(tool_calls), finish_reason=finish,
                                        refusal=refusal)],
                        usage=usage or Usage(input_tokens=10, output_tokens=5))


def test_render_text_message():
    out = orjson.loads(protocol.render_message(response("Hi! My name is Claude."), "claude-sonnet-4-5"))
    assert out == {
        "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi! My name is Claude."}], "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    }


def test_render_tool_use_message():
    call = ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather",
                    arguments='{"location": "San Francisco, CA", "unit": "celsius"}')
    out = orjson.loads(protocol.render_message(
        response("I'll check the weather.", [call], finish="tool_calls"), "m"))
    assert out["content"] == [
        {"type": "text", "text": "I'll check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA", "unit": "celsius"}}]
    assert out["stop_reason"] == "tool_use"


STOP_REASONS = {
    "stop": ("stop", False, "end_turn"), "length": ("length", False, "max_tokens"),
    "tool_calls": ("tool_calls", True, "tool_use"), "stop with calls": ("stop", True, "tool_use"),
    "filter": ("content_filter", False, "refusal"), "length with calls": ("length", True, "max_tokens"),
}


@pytest.mark.parametrize("finish,calls,expected", STOP_REASONS.values(), ids=STOP_REASONS.keys())
def test_stop_reason(finish, calls, expected):
    assert protocol.stop_reason(finish, calls) == expected


def test_render_cached_tokens_apart_and_refusal():
    out = orjson.loads(protocol.render_message(
        response(refusal="I can't help with that.", usage=Usage(input_tokens=100, output_tokens=7,
                                                                cached_tokens=64)), "m"))
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"
    assert out["usage"]["input_tokens"] == 36 and out["usage"]["cache_read_input_tokens"] == 64


@pytest.mark.parametrize("arguments,expected", [
    ("", {}), ('{"a": [1]}', {"a": [1]}), ("[1]", {"_unparsed_arguments": "[1]"}),
    ('{"a": ', {"_unparsed_arguments": '{"a": '}),
])
def test_tool_input(arguments, expected):
    assert protocol.tool_input(arguments) == expected


def test_render_empty_answer_and_msg_ids():
    out = orjson.loads(protocol.render_message(response(None, id="msg_abc"), "m"))
    assert out["content"] == [] and out["id"] == "msg_abc"


# --- errors --------------------------------------------------------------------------------------------------------

ERRORS = {
    "invalid": (errors.InvalidRequest("bad"), 400, "invalid_request_error"),
    "auth": (errors.AuthenticationFailed("invalid API key"), 401, "authentication_error"),
    "permission": (errors.PermissionDenied("no"), 403, "permission_error"),
    "not found": (errors.NotFound("no model"), 404, "not_found_error"),
    "too large": (errors.PayloadTooLarge("big"), 413, "request_too_large"),
    "rate limited": (errors.RateLimited("slow down"), 429, "rate_limit_error"),
    "upstream 400": (errors.UpstreamClientError("bad tool", status=422), 422, "invalid_request_error"),
    "no deployment 503": (errors.NoDeploymentAvailable("all down"), 503, "overloaded_error"),
    "no deployment 429": (errors.NoDeploymentAvailable("busy", status=429), 429, "rate_limit_error"),
    "bad gateway": (errors.UpstreamProtocolError("garbled"), 502, "api_error"),
    "timeout": (errors.UpstreamTimeout("slow"), 504, "timeout_error"),
    "internal": (errors.GatewayError("oops"), 500, "api_error"),
    # The gateway's own database away is no overload of the models (an Anthropic client would back off as if).
    "store 503": (errors.StoreUnavailable("db down"), 503, "api_error"),
    "ledger 503": (errors.DatabaseUnavailable("db down"), 503, "api_error"),
    "conflict": (errors.Conflict("in use"), 409, "conflict_error"),
}


@pytest.mark.parametrize("err,status,kind", ERRORS.values(), ids=ERRORS.keys())
def test_render_error(err, status, kind):
    out = orjson.loads(protocol.render_error(err, "req_1"))
    assert err.status == status
    assert out == {"type": "error", "error": {"type": kind, "message": err.message}, "request_id": "req_1"}


def test_render_stream_error():
    raw = protocol.render_stream_error(errors.UpstreamStreamBroken("cut"), "req_2")
    assert parse_sse(raw) == [("error", {"type": "error", "error": {"type": "api_error", "message": "cut"},
                                         "request_id": "req_2"})]


# --- streams -------------------------------------------------------------------------------------------------------


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            assert name.startswith("event: ") and data.startswith("data: ")
            events.append((name[7:], orjson.loads(data[6:])))
    return events


def chunk(**kw) -> ChatChunk:
    return ChatChunk(id="chatcmpl-9", model="gpt-4o-mini", created=1, **kw)


def render_stream(chunks: list[ChatChunk], close: bool = True) -> list[tuple[str, dict]]:
    renderer = protocol.StreamRenderer("claude-sonnet-4-5")
    raw = b"".join(renderer.feed(c) for c in chunks) + (renderer.close() if close else b"")
    return parse_sse(raw)


def test_text_stream_holds_message_delta_for_usage():
    events = render_stream([
        chunk(role="assistant", content=""), chunk(content="Hello"), chunk(content="!"),
        chunk(finish_reason="stop"), chunk(usage=Usage(input_tokens=12, output_tokens=6)),
    ], close=False)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-9" and start["model"] == "claude-sonnet-4-5"
    assert start["content"] == [] and start["stop_reason"] is None
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "!"}
    assert events[5][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"input_tokens": 12, "output_tokens": 6, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 0}}


def test_tool_stream_opens_a_block_per_call():
    events = render_stream([
        chunk(role="assistant", content="Let me check."),
        chunk(tool_calls=[ToolCallDelta(index=0, id="call_1", name="get_weather", arguments="")]),
        chunk(tool_calls=[ToolCallDelta(index=0, arguments='{"location":')]),
        chunk(tool_calls=[ToolCallDelta(index=0, arguments=' "Paris"}')]),
        chunk(tool_calls=[ToolCallDelta(index=1, id="call_2", name="get_time", arguments="{}")]),
        chunk(finish_reason="tool_calls"), chunk(usage=Usage(input_tokens=30, output_tokens=20)),
    ])
    assert [(name, data.get("index")) for name, data in events] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2),
        ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert events[4][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": ' "Paris"}'}
    assert events[11][1]["delta"]["stop_reason"] == "tool_use"


def test_stream_without_usage_finishes_at_close():
    events = render_stream([chunk(role="assistant", content="Hi"), chunk(finish_reason="length")])
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] == 0


def test_stream_usage_on_the_finish_chunk_and_nothing_after():
    renderer = protocol.StreamRenderer("m")
    raw = renderer.feed(chunk(content="Hi", finish_reason="stop", usage=Usage(input_tokens=3, output_tokens=1)))
    assert [name for name, _ in parse_sse(raw)][-2:] == ["message_delta", "message_stop"]
    assert renderer.feed(chunk(usage=Usage(input_tokens=3, output_tokens=1))) == b""
    assert renderer.close() == b""


def test_stream_is_accepted_by_the_sdk_accumulator():
    """The anthropic SDK's own `messages.stream()` accumulator rebuilds the whole message from our events."""
    streaming = pytest.importorskip("anthropic.lib.streaming._messages")
    events = render_stream([
        chunk(role="assistant", content=""), chunk(content="Sure."),
        chunk(tool_calls=[ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"location"')]),
        chunk(tool_calls=[ToolCallDelta(index=0, arguments=': "Oslo"}')]),
        chunk(finish_reason="tool_calls"), chunk(usage=Usage(input_tokens=40, output_tokens=9, cached_tokens=8)),
    ])
    snapshot, bufs = None, {}
    for _, data in events:
        snapshot = streaming.accumulate_event(event=data, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot.content[0].text == "Sure."
    assert snapshot.content[1].input == {"location": "Oslo"}
    assert snapshot.stop_reason == "tool_use"
    assert (snapshot.usage.input_tokens, snapshot.usage.output_tokens,
            snapshot.usage.cache_read_input_tokens) == (32, 9, 8)


# --- token counting ------------------------------------------------------------------------------------------------


def test_estimate_input_tokens_is_deterministic_and_grows():
    small = ChatRequest(model="m", messages=[{"role": "user", "content": "Hello, Claude"}])
    assert protocol.estimate_input_tokens(small) == 4 + 4 + 3  # 13 chars -> 4 tokens, one message, priming
    req = protocol.parse_count_tokens(body(tools=[WEATHER_TOOL], messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "Hello, Claude"}]}]))
    assert protocol.estimate_input_tokens(req) > 1600 + protocol.estimate_input_tokens(small)
