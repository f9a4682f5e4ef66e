"""The anthropic provider: canonical <-> Messages API, with payloads shaped like Anthropic's documented examples."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest, ToolCallDelta, Usage
from skyrelay.config.model import Deployment, Secret, Timeouts
from skyrelay.net.server import Response, StreamResponse
from skyrelay.providers import PROVIDERS, build_provider
from skyrelay.providers.anthropic import AnthropicProvider
from skyrelay.providers.anthropic.errors import anthropic_error
from skyrelay.providers.anthropic.request import build_request
from skyrelay.providers.anthropic.response import parse_message
from skyrelay.providers.anthropic.stream import StreamDecoder
from tests.support.recording_upstream import RecordingUpstream

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


def chat(messages, **fields) -> ChatRequest:
    return ChatRequest(model="claude", messages=messages, **fields)


def build(req: ChatRequest, **kw):
    return build_request(req, "claude-east", "claude-sonnet-4-5", **kw)


# --- request building ----------------------------------------------------------------------------------------------

REQUEST_CASES = [
    (
        "system hoisted, max_tokens defaulted",
        chat([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}]),
        {"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "You are terse.",
         "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]},
    ),
    (
        "developer and system both become system blocks; sampling fields mapped",
        chat([{"role": "system", "content": "A"}, {"role": "developer", "content": [{"type": "text", "text": "B"}]},
              {"role": "user", "content": "Hi"}], max_tokens=100, temperature=0.5, top_p=0.9, stop=["END"]),
        {"model": "claude-sonnet-4-5", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
         "stop_sequences": ["END"], "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
         "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
    ),
    (
        "consecutive user turns merged; images as base64 and url sources",
        chat([{"role": "user", "content": "Look:"},
              {"role": "user", "content": [
                  {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                  {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                  {"type": "text", "text": "What are these?"}]}]),
        {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What are these?"}]}]},
    ),
    (
        "tool round trip: tool_use with parsed input, results merged into one user turn",
        chat([{"role": "user", "content": "Weather in SF and NYC?"},
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "toolu_01", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"location": "San Francisco, CA"}'}},
                  {"id": "call:2", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"location": "New York, NY"}'}}]},
              {"role": "tool", "tool_call_id": "toolu_01", "content": "15 degrees"},
              {"role": "tool", "tool_call_id": "call:2", "content": [{"type": "text", "text": "20 degrees"}]}],
             tools=[WEATHER_TOOL], tool_choice="required"),
        {"model": "claude-sonnet-4-5", "max_tokens": 4096,
         "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                    "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "any"},
         "messages": [
             {"role": "user", "content": [{"type": "text", "text": "Weather in SF and NYC?"}]},
             {"role": "assistant", "content": [
                 {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                  "input": {"location": "San Francisco, CA"}},
                 {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "New York, NY"}}]},
             {"role": "user", "content": [
                 {"type": "tool_result", "tool_use_id": "toolu_01", "content": "15 degrees"},
                 {"type": "tool_result", "tool_use_id": "call_2",
                  "content": [{"type": "text", "text": "20 degrees"}]}]}]},
    ),
    (
        "named tool choice, parallel calls off, user -> metadata.user_id, harmless extras ignored",
        chat([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL],
             tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True,
             extra={"parallel_tool_calls": False, "user": "u-42", "store": False, "n": 1, "top_k": 5}),
        {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True, "top_k": 5,
         "metadata": {"user_id": "u-42"},
         "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                    "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
         "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    ),
    (
        "tool_choice none kept; empty assistant turn dropped",
        chat([{"role": "user", "content": "x"}, {"role": "assistant", "content": ""},
              {"role": "user", "content": "y"}], tools=[WEATHER_TOOL], tool_choice="none"),
        {"model": "claude-sonnet-4-5", "max_tokens": 4096,
         "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                    "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "none"},
         "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}]},
    ),
]


@pytest.mark.parametrize("case, req, expected", REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_build_request(case, req, expected):
    body, json_tool = build(req)
    assert body == expected
    assert json_tool is None


def test_default_max_tokens_option():
    body, _ = build(chat([{"role": "user", "content": "x"}]), default_max_tokens=512)
    assert body["max_tokens"] == 512


def test_json_schema_becomes_a_forced_tool():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    req = chat([{"role": "user", "content": "x"}],
               response_format={"type": "json_schema", "json_schema": {"name": "city info", "schema": schema}})
    body, json_tool = build(req)
    assert json_tool == "city_info"
    assert body["tools"] == [{"name": "city_info", "description": body["tools"][0]["description"],
                              "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": "city_info"}


REFUSALS = [
    ("n", chat([{"role": "user", "content": "x"}], extra={"n": 2}), "n"),
    ("logprobs", chat([{"role": "user", "content": "x"}], extra={"logprobs": True}), "logprobs"),
    ("logit_bias", chat([{"role": "user", "content": "x"}], extra={"logit_bias": {"50256": -100}}), "logit_bias"),
    ("unknown field", chat([{"role": "user", "content": "x"}], extra={"frobnicate": 1}), "frobnicate"),
    ("audio input", chat([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
     "messages[0].content[0]"),
    ("ftp image", chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]),
     "messages[0].content[0]"),
    ("json_schema with tools", chat([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL],
                                    response_format={"type": "json_schema", "json_schema": {"name": "a"}}),
     "response_format"),
    ("non-function tool", chat([{"role": "user", "content": "x"}], tools=[{"type": "web_search"}]), "tools[0].type"),
]


@pytest.mark.parametrize("case, req, param", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_unsupported_features_are_refused_by_name(case, req, param):
    with pytest.raises(errors.InvalidRequest) as info:
        build(req)
    assert info.value.param == param
    assert info.value.status == 400


def test_bad_tool_arguments_are_a_client_error():
    req = chat([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}])
    with pytest.raises(errors.InvalidRequest, match="not valid JSON"):
        build(req)


# --- response parsing ----------------------------------------------------------------------------------------------

RESPONSE_CASES = [
    (
        "text, end_turn, cache tokens counted in input",
        {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "Hi! My name is "}, {"type": "text", "text": "Claude."}],
         "stop_reason": "end_turn", "stop_sequence": None,
         "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100,
                   "output_tokens": 7}},
        "Hi! My name is Claude.", [], "stop", Usage(115, 7, 100, 5),
    ),
    (
        "tool_use -> tool_calls",
        {"id": "msg_02", "model": "claude-sonnet-4-5", "stop_reason": "tool_use",
         "content": [{"type": "text", "text": "Let me check."},
                     {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                      "input": {"location": "San Francisco, CA"}}],
         "usage": {"input_tokens": 20, "output_tokens": 30}},
        "Let me check.", [("toolu_01", "get_weather", {"location": "San Francisco, CA"})], "tool_calls",
        Usage(20, 30, 0),
    ),
    ("only a tool call: content None",
     {"id": "m", "model": "c", "stop_reason": "tool_use",
      "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "usage": {}},
     None, [("t", "f", {})], "tool_calls", Usage()),
    ("max_tokens -> length", {"id": "m", "model": "c", "stop_reason": "max_tokens",
                              "content": [{"type": "text", "text": "abc"}]}, "abc", [], "length", Usage()),
    ("stop_sequence -> stop", {"id": "m", "model": "c", "stop_reason": "stop_sequence",
                               "content": [{"type": "text", "text": "abc"}]}, "abc", [], "stop", Usage()),
    ("refusal -> content_filter", {"id": "m", "model": "c", "stop_reason": "refusal", "content": []},
     "", [], "content_filter", Usage()),
    ("thinking blocks skipped", {"id": "m", "model": "c", "stop_reason": "end_turn", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "42"}]},
     "42", [], "stop", Usage()),
]


@pytest.mark.parametrize("case, data, content, calls, finish, usage", RESPONSE_CASES,
                         ids=[c[0] for c in RESPONSE_CASES])
def test_parse_message(case, data, content, calls, finish, usage):
    resp = parse_message(data, "claude-east")
    choice = resp.choices[0]
    assert (resp.id, resp.model, resp.raw) == (data["id"], data["model"], None)
    assert resp.created > 0
    assert choice.content == content
    assert [(c.id, c.name, orjson.loads(c.arguments)) for c in choice.tool_calls] == calls
    assert choice.finish_reason == finish
    assert resp.usage == usage


def test_json_answer_tool_becomes_content():
    data = {"id": "m", "model": "c", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t", "name": "city_info", "input": {"city": "Oslo"}}]}
    choice = parse_message(data, "d", json_tool="city_info").choices[0]
    assert (orjson.loads(choice.content), choice.tool_calls, choice.finish_reason) == ({"city": "Oslo"}, [], "stop")


def test_malformed_answer_is_a_protocol_error():
    with pytest.raises(errors.UpstreamProtocolError):
        parse_message({"type": "message"}, "d")


# --- stream decoding -----------------------------------------------------------------------------------------------

STREAM = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 25, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Checking"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": '{"location": "S'}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": 'F"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 89, "input_tokens": None, "cache_read_input_tokens": None}}),
    ("message_stop", {"type": "message_stop"}),
]


def decode_all(events, json_tool=None):
    decoder = StreamDecoder("claude-east", json_tool)
    chunks = [c for name, data in events for c in decoder.decode(name, orjson.dumps(data))]
    return decoder, chunks


def test_stream_decodes_in_openai_order():
    decoder, chunks = decode_all(STREAM)
    assert decoder.done
    assert {(c.id, c.model, c.created) for c in chunks} == {("msg_1", "claude-sonnet-4-5", decoder.created)}
    assert chunks[0].role == "assistant" and chunks[0].content == ""
    assert chunks[1].content == "Checking"
    assert chunks[2].tool_calls == [ToolCallDelta(index=0, id="toolu_a", name="get_weather")]
    assert [c.tool_calls for c in chunks[3:5]] == [[ToolCallDelta(0, arguments='{"location": "S')],
                                                   [ToolCallDelta(0, arguments='F"}')]]
    assert chunks[5].tool_calls == [ToolCallDelta(index=1, id="toolu_b", name="get_time")]
    assert chunks[6].tool_calls == [ToolCallDelta(1, arguments="{}")]
    assert chunks[7].finish_reason == "tool_calls" and chunks[7].usage is None
    last = chunks[8]
    assert last.usage == Usage(28, 89, 3)
    assert (last.role, last.content, last.tool_calls, last.finish_reason) == (None, None, None, None)
    assert len(chunks) == 9


def test_stream_json_answer_tool_streams_as_content():
    events = [STREAM[0],
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                  "type": "tool_use", "id": "t", "name": "json_response", "input": {}}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "input_json_delta", "partial_json": '{"a":'}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "input_json_delta", "partial_json": " 1}"}}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}}),
              ("message_stop", {"type": "message_stop"})]
    _, chunks = decode_all(events, json_tool="json_response")
    assert "".join(c.content or "" for c in chunks) == '{"a": 1}'
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert not any(c.tool_calls for c in chunks)


@pytest.mark.parametrize("etype, exc, charged", [("overloaded_error", errors.UpstreamUnavailable, True),
                                                 ("api_error", errors.UpstreamUnavailable, True),
                                                 ("rate_limit_error", errors.UpstreamRateLimited, True),
                                                 ("invalid_request_error", errors.UpstreamClientError, False),
                                                 ("request_too_large", errors.UpstreamClientError, False)])
def test_stream_error_event_raises(etype, exc, charged):
    """An error event about the request itself is the client's: passed on, not charged to the deployment."""
    decoder = StreamDecoder("claude-east")
    decoder.decode("message_start", orjson.dumps(STREAM[0][1]))
    with pytest.raises(exc, match="Overloaded") as caught:
        decoder.decode("error", orjson.dumps({"type": "error", "error": {"type": etype, "message": "Overloaded"}}))
    assert caught.value.cools_down is charged


def test_stream_cut_before_message_stop_is_detected():
    decoder, _ = decode_all(STREAM[:5])
    with pytest.raises(errors.UpstreamUnavailable, match="before message_stop"):
        decoder.finish()


# --- error mapping -------------------------------------------------------------------------------------------------


def error_body(etype: str, message: str = "boom") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


ERROR_CASES = [
    (400, {}, error_body("invalid_request_error", "messages: roles must alternate"), errors.UpstreamClientError, 400),
    (401, {}, error_body("authentication_error", "invalid x-api-key"), errors.UpstreamAuthFailed, 401),
    (403, {}, error_body("permission_error"), errors.UpstreamAuthFailed, 401),
    (404, {}, error_body("not_found_error", "model: claude-x"), errors.UpstreamUnavailable, 503),
    (413, {}, error_body("request_too_large"), errors.UpstreamClientError, 413),
    (429, {"retry-after": "7"}, error_body("rate_limit_error"), errors.UpstreamRateLimited, 429),
    (500, {}, error_body("api_error"), errors.UpstreamUnavailable, 503),
    (529, {}, error_body("overloaded_error", "Overloaded"), errors.UpstreamUnavailable, 503),
    (504, {}, error_body("timeout_error"), errors.UpstreamTimeout, 504),
    (502, {}, b"<html>bad gateway</html>", errors.UpstreamUnavailable, 503),
]


@pytest.mark.parametrize("status, headers, body, exc, gateway_status", ERROR_CASES,
                         ids=[f"{c[0]}-{c[3].__name__}" for c in ERROR_CASES])
def test_error_mapping(status, headers, body, exc, gateway_status):
    err = anthropic_error(status, headers, body, "claude-east")
    assert type(err) is exc
    assert err.status == gateway_status
    assert err.deployment == "claude-east"


def test_error_mapping_details():
    err = anthropic_error(429, {"retry-after": "7"}, error_body("rate_limit_error"), "d")
    assert err.retry_after == 7.0
    client = anthropic_error(400, {}, error_body("invalid_request_error", "roles must alternate"), "d")
    assert client.message == "roles must alternate" and not client.retryable


# --- the provider over HTTP ----------------------------------------------------------------------------------------


def deployment(url: str, **options) -> Deployment:
    return Deployment("claude-east", "claude", "anthropic", model="claude-sonnet-4-5", base_url=url,
                      api_key=Secret("sk-ant-secret"), timeouts=Timeouts(connect=2, first_byte=5, total=5),
                      options=options)


async def _chunks(events):
    for name, data in events:
        yield f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def test_registered():
    assert PROVIDERS["anthropic"] is AnthropicProvider


async def test_chat_over_http_sends_anthropic_headers():
    async with RecordingUpstream() as up:
        up.reply = lambda: Response(200, orjson.dumps(RESPONSE_CASES[0][1]), [("content-type", "application/json")])
        provider = build_provider(deployment(up.url + "/v1", anthropic_version="2023-06-01"))
        try:
            resp = await provider.chat(chat([{"role": "user", "content": "Hello"}], stream=False))
        finally:
            await provider.aclose()
        sent = up.requests[0]
        assert sent.path == "/v1/messages"
        assert sent.headers["x-api-key"] == "sk-ant-secret"
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert "stream" not in orjson.loads(sent.body)
        assert resp.choices[0].content == "Hi! My name is Claude."


async def test_stream_over_http():
    async with RecordingUpstream() as up:
        up.reply = lambda: StreamResponse(200, _chunks(STREAM), [("content-type", "text/event-stream")])
        provider = build_provider(deployment(up.url))
        try:
            chunks = [c async for c in provider.chat_stream(chat([{"role": "user", "content": "x"}], stream=True))]
        finally:
            await provider.aclose()
        assert orjson.loads(up.requests[0].body)["stream"] is True
        assert len(chunks) == 9 and chunks[-1].usage == Usage(28, 89, 3)


async def test_stream_error_status_raises_before_first_chunk():
    async with RecordingUpstream() as up:
        up.reply = lambda: Response(529, error_body("overloaded_error", "Overloaded"))
        provider = build_provider(deployment(up.url))
        try:
            stream = provider.chat_stream(chat([{"role": "user", "content": "x"}], stream=True))
            with pytest.raises(errors.UpstreamUnavailable) as info:
                await stream.__anext__()
        finally:
            await provider.aclose()
        assert "sk-ant-secret" not in str(info.value)


async def test_stream_cut_short_raises():
    async with RecordingUpstream() as up:
        up.reply = lambda: StreamResponse(200, _chunks(STREAM[:4]), [("content-type", "text/event-stream")])
        provider = build_provider(deployment(up.url))
        try:
            stream = provider.chat_stream(chat([{"role": "user", "content": "x"}], stream=True))
            first = await stream.__anext__()
            assert first.role == "assistant"
            with pytest.raises(errors.UpstreamUnavailable, match="before message_stop"):
                async for _ in stream:
                    pass
        finally:
            await provider.aclose()


def test_secret_not_in_repr():
    d = deployment("http://127.0.0.1:1")
    assert "sk-ant-secret" not in repr(d)


def _sse(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def _text(index: int, text: str) -> bytes:
    return _sse("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}})


def test_plain_reads_text_deltas_of_text_blocks_only_and_changes_nothing():
    """What a translated stream's pipe may render on its own (SSEChunks.translated): text deltas of text blocks,
    whole and in the usual spelling; anything else is None, left to the decoder's ordinary reading."""
    decoder = StreamDecoder("claude-east")
    decoder.decode("message_start", orjson.dumps({"type": "message_start", "message": {"id": "msg_1", "model": "m"}}))
    decoder.decode("content_block_start", orjson.dumps(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
    decoder.decode("content_block_start", orjson.dumps({"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}))
    before = (dict(decoder.blocks), dict(decoder.counts), decoder.tool_count, decoder.done)
    chunks = decoder.plain(_text(0, "Hel") + _text(0, "") + _text(0, "lo"))
    assert [(c.id, c.model, c.content) for c in chunks] == [("msg_1", "m", "Hel"), ("msg_1", "m", "lo")]
    assert chunks[0].created == decoder.created
    read = [c for text in ("Hel", "lo") for c in decoder.decode("content_block_delta", orjson.dumps(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}))]
    assert chunks == read  # what the ordinary reading makes of them
    for other in (
        _text(1, "x"),  # a tool_use block's
        _sse("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
        _sse("ping", {}),
        _sse("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
        _sse("message_stop", {}),
        _sse("error", {"error": {"type": "overloaded_error", "message": "busy"}}),
        b'event: content_block_delta\ndata: {"type":"content_block_delta",\ndata: "index":0}\n\n',  # two lines
        b"event: content_block_delta\ndata: {not json}\n\n",
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n',  # no name
        _text(0, "fine") + _sse("message_stop", {}),  # one of them is not plain: none is read here
        _sse("content_block_delta", {"index": [0], "delta": {"type": "text_delta", "text": "x"}}),  # odd index
    ):
        assert decoder.plain(other) is None, other
    assert (dict(decoder.blocks), dict(decoder.counts), decoder.tool_count, decoder.done) == before


def test_a_streamed_tool_use_without_input_has_empty_json_arguments():
    """Claude streams no input_json_delta (or an empty one) for a call without input: its arguments are "{}"."""
    events = [STREAM[0],
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now",
                                                         "input": {}}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "input_json_delta", "partial_json": ""}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}}),
              ("message_stop", {"type": "message_stop"})]
    _, chunks = decode_all(events)
    assert "".join(d.arguments for c in chunks for d in c.tool_calls or ()) == "{}"
