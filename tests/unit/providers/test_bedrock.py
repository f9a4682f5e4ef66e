"""Bedrock Converse translation: request building (boto3 is the judge of the wire shape), response parsing,
event-stream decoding, error mapping, SigV4 signing, and the provider over a local socket."""

from __future__ import annotations

import binascii
from urllib.parse import unquote

import boto3
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from skyrelay import errors
from skyrelay.canonical import ChatRequest
from skyrelay.config.model import Deployment, Secret, Timeouts
from skyrelay.emulator.protocols.bedrock_eventstream import encode_message
from skyrelay.net.server import Response, StreamResponse, start_server
from skyrelay.providers import bedrock as bedrock_pkg
from skyrelay.providers.bedrock import BedrockProvider
from skyrelay.providers.bedrock.errors import error_from_event, error_from_http
from skyrelay.providers.bedrock.request import build_converse_body
from skyrelay.providers.bedrock.response import parse_converse_response
from skyrelay.providers.bedrock.stream import ConverseStreamDecoder

KEY_ID, SECRET, TOKEN = "AKIDTESTONLY", "test-secret-never-printed", "test-session-token"
PROFILE_MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
STATION_TOOL = {"type": "function", "function": {
    "name": "top_song", "description": "Most played song on a radio station.",
    "parameters": {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]}}}


def chat(messages, **kw) -> ChatRequest:
    return ChatRequest(model="claude", messages=messages, **kw)


def deployment(base_url=None, model=PROFILE_MODEL, options=None) -> Deployment:
    """A bedrock deployment; explicit keys unless `options` says otherwise ({}: botocore's default chain)."""
    if options is None:
        options = {"aws_access_key_id": Secret(KEY_ID), "aws_secret_access_key": Secret(SECRET)}
    return Deployment("br1", "claude", "bedrock", model=model, base_url=base_url, region="us-east-1",
                      timeouts=Timeouts(connect=1, first_byte=2, total=5), options=options)


# --- boto3 as the judge of the request's wire form ----------------------------------------------------------------


class _Captured(Exception):
    pass


def boto3_wire(operation: str, **params) -> tuple[str, dict]:
    """The path and JSON body boto3 itself sends for these parameters (the request never leaves the process)."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="AK",
                          aws_secret_access_key="SK", config=Config(retries={"total_max_attempts": 1}))
    seen = {}

    def capture(request, **_):
        seen["request"] = request
        raise _Captured

    client.meta.events.register("before-send.bedrock-runtime.*", capture)
    with pytest.raises(_Captured):
        getattr(client, operation)(**params)
    request = seen["request"]
    return request.url.split(".amazonaws.com", 1)[1], orjson.loads(request.body)


SAME_AS_BOTO3 = [
    pytest.param(
        chat([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello"}],
             max_tokens=256, temperature=0.2, top_p=0.9, stop=["###"]),
        {"system": [{"text": "Answer briefly."}], "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
         "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["###"]}},
        id="system-and-inference-config"),
    pytest.param(
        chat([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]),
        {"messages": [{"role": "user", "content": [
            {"text": "What is this?"},
            {"image": {"format": "png", "source": {"bytes": binascii.a2b_base64(PNG)}}}]}]},
        id="inline-image"),
    pytest.param(
        chat([{"role": "user", "content": "Most popular song on WZPZ?"},
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                   "function": {"name": "top_song", "arguments": '{"sign": "WZPZ"}'}}]},
              {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
               "content": '{"song": "Elemental Hotel", "artist": "8 Storey Hike"}'}],
             tools=[STATION_TOOL], tool_choice={"type": "function", "function": {"name": "top_song"}}),
        {"messages": [
            {"role": "user", "content": [{"text": "Most popular song on WZPZ?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                                                           "name": "top_song", "input": {"sign": "WZPZ"}}}]},
            {"role": "user", "content": [{"toolResult": {
                "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                "content": [{"text": '{"song": "Elemental Hotel", "artist": "8 Storey Hike"}'}]}}]}],
         "toolConfig": {"tools": [{"toolSpec": {
             "name": "top_song", "description": "Most played song on a radio station.",
             "inputSchema": {"json": STATION_TOOL["function"]["parameters"]}}}],
             "toolChoice": {"tool": {"name": "top_song"}}}},
        id="tool-round-trip"),
]


@pytest.mark.parametrize("req,boto3_params", SAME_AS_BOTO3)
def test_request_body_is_what_boto3_sends(req, boto3_params):
    _, wire = boto3_wire("converse", modelId=PROFILE_MODEL, **boto3_params)
    assert build_converse_body(req, "br1") == wire


@pytest.mark.parametrize("model", [PROFILE_MODEL, "anthropic.claude-3-haiku-20240307-v1:0",
                                   "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-8b"])
def test_model_id_is_encoded_in_the_path_like_boto3(model):
    provider = BedrockProvider(deployment(model=model))
    msgs = [{"role": "user", "content": [{"text": "hi"}]}]
    assert boto3_wire("converse", modelId=model, messages=msgs)[0] == provider.converse_path
    assert boto3_wire("converse_stream", modelId=model, messages=msgs)[0] == provider.stream_path


# --- request building: the canonical shapes Bedrock spells differently ---------------------------------------------


def test_a_tool_call_id_longer_than_converse_takes_is_shortened_alike_in_the_call_and_its_result():
    """A Gemini call id carries its thought signature (hundreds of characters); Converse takes 64 at most and
    answered ValidationException when the next turn of a mixed group went to Bedrock."""
    from skyrelay.providers.gemini.callids import new_call_id

    ids = [new_call_id("A" * 400), new_call_id("B" * 400)]
    body = build_converse_body(chat([
        {"role": "user", "content": "Songs on WZPZ and WKRP?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "top_song", "arguments": "{}"}}
            for call_id in ids]},
        *({"role": "tool", "tool_call_id": call_id, "content": "a song"} for call_id in ids),
    ], tools=[STATION_TOOL]), "br1")
    calls = [block["toolUse"]["toolUseId"] for block in body["messages"][1]["content"]]
    results = [block["toolResult"]["toolUseId"] for block in body["messages"][2]["content"]]
    assert calls == results and len(set(calls)) == 2 and all(len(i) <= 64 for i in calls)


def test_consecutive_turns_merge_and_parallel_tool_results_share_one_user_turn():
    body = build_converse_body(chat([
        {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]},
        {"role": "user", "content": "Songs on WZPZ and WKRP?"},
        {"role": "user", "content": "Both, please."},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'}},
            {"id": "b", "type": "function", "function": {"name": "top_song", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "a", "content": "Elemental Hotel"},
        {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "Blue Monday"}]},
        {"role": "user", "content": "Thanks!"},
    ], tools=[STATION_TOOL]), "br1")
    assert body["system"] == [{"text": "Be terse."}]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"text": "Songs on WZPZ and WKRP?"}, {"text": "Both, please."}]
    assert body["messages"][1]["content"] == [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "a", "name": "top_song", "input": {"sign": "WZPZ"}}},
        {"toolUse": {"toolUseId": "b", "name": "top_song", "input": {}}}]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "a", "content": [{"text": "Elemental Hotel"}]}},
        {"toolResult": {"toolUseId": "b", "content": [{"text": "Blue Monday"}]}},
        {"text": "Thanks!"}]
    assert "toolChoice" not in body["toolConfig"]


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"auto": {}}),
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "top_song"}}, {"tool": {"name": "top_song"}}),
])
def test_tool_choice(choice, expected):
    body = build_converse_body(chat([{"role": "user", "content": "hi"}], tools=[STATION_TOOL], tool_choice=choice), "d")
    assert body["toolConfig"]["toolChoice"] == expected


def test_tool_choice_none_drops_the_tools():
    body = build_converse_body(chat([{"role": "user", "content": "hi"}], tools=[STATION_TOOL], tool_choice="none"), "d")
    assert "toolConfig" not in body


@pytest.mark.parametrize("mime,fmt", [("image/jpeg", "jpeg"), ("image/jpg", "jpeg"), ("image/gif", "gif"),
                                      ("image/webp", "webp")])
def test_image_formats(mime, fmt):
    body = build_converse_body(chat([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:{mime};base64,AAAA"}}]}]), "d")
    assert body["messages"][0]["content"] == [{"image": {"format": fmt, "source": {"bytes": "AAAA"}}}]


def test_harmless_extras_are_ignored():
    extra = {"user": "u1", "metadata": {"a": "b"}, "store": False, "service_tier": "auto", "n": 1,
             "parallel_tool_calls": True, "logprobs": False, "seed": None}
    body = build_converse_body(chat([{"role": "user", "content": "hi"}], extra=extra,
                                    response_format={"type": "text"}), "d")
    assert set(body) == {"messages"}


TOOL_HISTORY = [{"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                                                      "function": {"name": "top_song", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": "x"}]

REFUSED = [
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"n": 2}), "n", id="n"),
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"logprobs": True}), "logprobs", id="logprobs"),
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"top_logprobs": 2}), "top_logprobs", id="top_lp"),
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"top_k": 7}), "top_k", id="top_k"),
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"logit_bias": {"1": 2}}), "logit_bias", id="bias"),
    pytest.param(chat([{"role": "user", "content": "hi"}], extra={"frequency_penalty": 0.5}), "frequency_penalty",
                 id="penalty"),
    pytest.param(chat([{"role": "user", "content": "hi"}], response_format={"type": "json_object"}),
                 "response_format", id="json_object"),
    pytest.param(chat([{"role": "user", "content": "hi"}],
                      response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
                 "response_format", id="json_schema"),
    pytest.param(chat([{"role": "user", "content": [{"type": "image_url",
                                                     "image_url": {"url": "https://example.com/cat.png"}}]}]),
                 "messages[0].content[0]", id="image-by-url"),
    pytest.param(chat([{"role": "user", "content": [{"type": "image_url",
                                                     "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]),
                 "messages[0].content[0]", id="image-type"),
    pytest.param(chat([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
                 "messages[0].content[0]", id="audio"),
    pytest.param(chat(TOOL_HISTORY, tools=[STATION_TOOL], tool_choice="none"), "tool_choice", id="none-with-history"),
    pytest.param(chat([{"role": "user", "content": "hi"}], tools=[{"type": "web_search"}]), "tools[0]", id="tool-type"),
]


@pytest.mark.parametrize("req,param", REFUSED)
def test_unsupported_features_are_refused_by_name(req, param):
    with pytest.raises(errors.InvalidRequest) as caught:
        build_converse_body(req, "br1")
    assert caught.value.param == param
    assert caught.value.status == 400
    if not param.startswith("messages"):
        assert "deployment 'br1' (bedrock)" in caught.value.message


def test_invalid_tool_arguments_are_a_client_error():
    req = chat([{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}])
    with pytest.raises(errors.InvalidRequest) as caught:
        build_converse_body(req, "br1")
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


# --- responses -------------------------------------------------------------------------------------------------------


def test_parse_text_response():
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "Hello! How can I help?"}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20},
            "metrics": {"latencyMs": 420}}
    resp = parse_converse_response(data, PROFILE_MODEL, "chatcmpl-r1", "br1")
    assert (resp.id, resp.model, resp.raw) == ("chatcmpl-r1", PROFILE_MODEL, None)
    choice = resp.choices[0]
    assert (choice.content, choice.tool_calls, choice.finish_reason) == ("Hello! How can I help?", [], "stop")
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (12, 8, 0)


def test_parse_tool_use_response_with_cache_usage():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"text": "Let me look that up."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song", "input": {"sign": "WZPZ"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 5, "outputTokens": 30, "totalTokens": 135, "cacheReadInputTokens": 80,
                  "cacheWriteInputTokens": 20}, "metrics": {"latencyMs": 1}}
    resp = parse_converse_response(data, "m", "id", "br1")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.content == "Let me look that up."
    assert [(c.id, c.name, orjson.loads(c.arguments)) for c in choice.tool_calls] == [
        ("tooluse_1", "top_song", {"sign": "WZPZ"})]
    # Bedrock counts cache reads/writes apart from inputTokens; canonical input includes them.
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (105, 30, 80)


@pytest.mark.parametrize("stop,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("model_context_window_exceeded", "length"), ("something_new", "stop")])
def test_stop_reasons(stop, finish):
    data = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": stop, "usage": {}}
    assert parse_converse_response(data, "m", "id", "d").choices[0].finish_reason == finish


def test_response_without_message_is_a_protocol_error():
    with pytest.raises(errors.UpstreamProtocolError):
        parse_converse_response({"Output": {}}, "m", "id", "d")


# --- the event stream ------------------------------------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only), as the emulator frames it."""
    return encode_message(list(headers.items()), payload)


def event(name: str, data: dict) -> bytes:
    return frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                 orjson.dumps(data))


def exception(name: str, message: str) -> bytes:
    return frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                 orjson.dumps({"message": message}))


TEXT_STREAM = [
    event("messageStart", {"role": "assistant", "p": "abcd"}),
    event("contentBlockDelta", {"delta": {"text": "Hello"}, "contentBlockIndex": 0}),
    event("contentBlockDelta", {"delta": {"text": " there"}, "contentBlockIndex": 0}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event("messageStop", {"stopReason": "end_turn"}),
    event("metadata", {"usage": {"inputTokens": 9, "outputTokens": 2, "totalTokens": 11}, "metrics": {"latencyMs": 5}}),
]

TOOL_STREAM = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"delta": {"text": "Checking."}, "contentBlockIndex": 0}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event("contentBlockStart", {"start": {"toolUse": {"toolUseId": "tooluse_a", "name": "top_song"}},
                                "contentBlockIndex": 1}),
    event("contentBlockDelta", {"delta": {"toolUse": {"input": '{"sign": '}}, "contentBlockIndex": 1}),
    event("contentBlockDelta", {"delta": {"toolUse": {"input": '"WZPZ"}'}}, "contentBlockIndex": 1}),
    event("contentBlockStop", {"contentBlockIndex": 1}),
    event("contentBlockStart", {"start": {"toolUse": {"toolUseId": "tooluse_b", "name": "top_song"}},
                                "contentBlockIndex": 2}),
    event("contentBlockDelta", {"delta": {"toolUse": {"input": '{"sign": "WKRP"}'}}, "contentBlockIndex": 2}),
    event("contentBlockStop", {"contentBlockIndex": 2}),
    event("messageStop", {"stopReason": "tool_use"}),
    event("metadata", {"usage": {"inputTokens": 40, "outputTokens": 20, "totalTokens": 60}, "metrics": {}}),
]


def decode(frames: list[bytes], split: int | None = None):
    """Decode a whole stream, fed in pieces of `split` bytes (None: one piece)."""
    data = b"".join(frames)
    decoder = ConverseStreamDecoder("chatcmpl-s", "m", "br1")
    step = split or len(data)
    chunks = []
    for i in range(0, len(data), step):
        chunks += decoder.feed(data[i:i + step])
    return chunks + decoder.finish()


@pytest.mark.parametrize("split", [None, 1, 7])
def test_text_stream_in_openai_order(split):
    chunks = decode(TEXT_STREAM, split)
    assert {(c.id, c.model) for c in chunks} == {("chatcmpl-s", "m")}
    assert len({c.created for c in chunks}) == 1
    assert (chunks[0].role, chunks[0].content) == ("assistant", "")
    assert [c.content for c in chunks[1:3]] == ["Hello", " there"]
    assert chunks[3].finish_reason == "stop" and chunks[3].content is None
    usage = chunks[4]
    assert (usage.role, usage.content, usage.tool_calls, usage.finish_reason) == (None, None, None, None)
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (9, 2)
    assert len(chunks) == 5


def test_tool_stream_numbers_calls_from_zero():
    chunks = decode(TOOL_STREAM, 5)
    deltas = [tc for c in chunks for tc in (c.tool_calls or ())]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "tooluse_a", "top_song", ""), (0, None, None, '{"sign": '), (0, None, None, '"WZPZ"}'),
        (1, "tooluse_b", "top_song", ""), (1, None, None, '{"sign": "WKRP"}')]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.total_tokens == 60


@pytest.mark.parametrize("name,error_type,status", [
    ("throttlingException", errors.UpstreamRateLimited, 429),
    ("modelStreamErrorException", errors.UpstreamUnavailable, 503),
    ("internalServerException", errors.UpstreamUnavailable, 503),
    ("serviceUnavailableException", errors.UpstreamUnavailable, 503),
    ("validationException", errors.UpstreamClientError, 400),
])
def test_stream_exceptions_raise_typed_errors(name, error_type, status):
    decoder = ConverseStreamDecoder("id", "m", "br1")
    assert decoder.feed(TEXT_STREAM[0]) == []  # the role chunk waits, so an early exception can still fail over
    with pytest.raises(errors.UpstreamError) as caught:
        decoder.feed(exception(name, "Too many tokens, please wait."))
    assert type(caught.value) is error_type and caught.value.status == status
    assert "Too many tokens" in caught.value.message


def test_stream_exception_after_content_raises_too():
    decoder = ConverseStreamDecoder("id", "m", "br1")
    assert [(c.role, c.content) for c in decoder.feed(b"".join(TEXT_STREAM[:2]))] == [("assistant", ""),
                                                                                     (None, "Hello")]
    with pytest.raises(errors.UpstreamUnavailable, match="model stopped"):
        decoder.feed(exception("modelStreamErrorException", "The model stopped unexpectedly."))


def test_stream_cut_before_message_stop_is_an_error():
    with pytest.raises(errors.UpstreamProtocolError, match="before messageStop"):
        decode(TEXT_STREAM[:3])


def test_corrupt_frame_is_a_protocol_error():
    broken = bytearray(TEXT_STREAM[0])
    broken[-1] ^= 0xFF
    with pytest.raises(errors.UpstreamProtocolError):
        ConverseStreamDecoder("id", "m", "br1").feed(bytes(broken))


def test_error_message_type_uses_its_headers():
    err = error_from_event({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"},
                           b"", "br1")
    assert isinstance(err, errors.UpstreamUnavailable) and "boom" in err.message


# --- HTTP error answers ----------------------------------------------------------------------------------------------

ERRORS = [
    (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamRateLimited),
    (400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamClientError),
    (403, "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
     errors.UpstreamAuthFailed),
    (403, "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/",
     errors.UpstreamAuthFailed),
    (403, "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
     errors.UpstreamAuthFailed),
    (404, "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamUnavailable),
    (429, "ModelNotReadyException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamUnavailable),
    (503, "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
     errors.UpstreamUnavailable),
    (500, "InternalServerException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamUnavailable),
    (408, "ModelTimeoutException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamTimeout),
    (424, "ModelErrorException:http://internal.amazon.com/coral/com.amazon.bedrock/", errors.UpstreamUnavailable),
    (418, "", errors.UpstreamClientError),  # no type at all: the status decides
    (502, "", errors.UpstreamUnavailable),
]


@pytest.mark.parametrize("status,error_type,expected", ERRORS)
def test_http_errors_map_by_bedrock_type(status, error_type, expected):
    headers = {"x-amzn-errortype": error_type} if error_type else {}
    err = error_from_http(status, headers, b'{"message":"The request was denied."}', "br1")
    assert type(err) is expected
    if expected is errors.UpstreamAuthFailed:  # AWS's own words may quote signed headers: named by type only
        assert "The request was denied." not in err.message
        assert error_type.split(":")[0] in err.message and "br1" in err.message
    else:
        assert "The request was denied." in err.message
    assert err.retryable == (expected is not errors.UpstreamClientError)


def test_error_type_from_body_and_capitalised_message():
    body = b'{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"The token is invalid."}'
    err = error_from_http(403, {}, body, "br1")
    assert isinstance(err, errors.UpstreamAuthFailed) and "UnrecognizedClientException" in err.message
    assert "The token is invalid." not in err.message


def test_throttling_keeps_retry_after():
    err = error_from_http(429, {"x-amzn-errortype": "ThrottlingException", "retry-after": "3"}, b"{}", "br1")
    assert err.retry_after == 3.0


# --- credentials and signing -----------------------------------------------------------------------------------------


def verify_signature(method: str, path: str, headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """What a server does: rebuild the canonical request from what arrived, sign it again, compare."""
    auth = headers["authorization"]
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key_id, date, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key_id, secret, headers.get("x-amz-security-token")), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return expected == fields["Signature"]


def test_signature_verifies_and_secret_never_shows():
    options = {"aws_access_key_id": Secret(KEY_ID), "aws_secret_access_key": Secret(SECRET),
               "aws_session_token": Secret(TOKEN)}
    provider = BedrockProvider(deployment("http://127.0.0.1:9", options=options))
    body = b'{"messages":[]}'
    headers = dict(provider.signer.sign(provider.converse_path, body, [("content-type", "application/json")]))
    assert headers["x-amz-security-token"] == TOKEN
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "host" not in headers  # the HTTP client writes it
    headers["host"] = "127.0.0.1:9"
    assert verify_signature("POST", provider.converse_path, headers, body)
    assert not verify_signature("POST", provider.converse_path, headers, body + b" ")
    for text in (repr(provider.signer), repr(provider.deployment), repr(provider.__dict__)):
        assert SECRET not in text and TOKEN not in text


def test_signature_matches_botocore_exactly_across_days_and_refreshes(monkeypatch):
    """Our signer against botocore's own, byte for byte: an ARN's encoded path, a header value with runs of
    blanks, no session token, a new day (a new signing key) and credentials refreshed mid-day."""
    import time

    from skyrelay.providers.bedrock import auth

    class Refreshing:  # what botocore's refreshable credentials look like to the signer
        def __init__(self):
            self.frozen = Credentials(KEY_ID, "first-secret").get_frozen_credentials()

        def get_frozen_credentials(self):
            return self.frozen

    credentials, real_gmtime = Refreshing(), time.gmtime
    signer = auth.SigV4Signer(credentials, "eu-west-3", "bedrock.example:8443", "d")
    path = "/base/model/" + "arn%3Aaws%3Abedrock%3Aeu-west-3%3A1%3Ainference-profile%2Feu.nova" + "/converse"
    body = b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}'
    for moment, secret in ((1_700_000_000, "first-secret"), (1_700_000_030, "first-secret"),
                           (1_700_090_000, "first-secret"), (1_700_090_060, "second-secret")):
        credentials.frozen = Credentials(KEY_ID, secret).get_frozen_credentials()
        monkeypatch.setattr(auth.time, "gmtime", lambda *_, at=moment: real_gmtime(at))
        ours = dict(signer.sign(path, body, [("Content-Type", "application/json"), ("accept", " a   b ")]))
        theirs = AWSRequest(method="POST", url="https://bedrock.example:8443" + path, data=body,
                            headers={"host": "bedrock.example:8443", "content-type": "application/json",
                                     "accept": " a   b "})
        theirs.context["timestamp"] = ours["x-amz-date"]
        reference = SigV4Auth(credentials.frozen, "bedrock", "eu-west-3")
        reference._modify_request_before_signing(theirs)
        canonical = reference.canonical_request(theirs)
        signature = reference.signature(reference.string_to_sign(theirs, canonical), theirs)
        assert ours["x-amz-date"] == time.strftime("%Y%m%dT%H%M%SZ", real_gmtime(moment))
        assert ours["authorization"].endswith(f"Signature={signature}"), canonical
        assert "x-amz-security-token" not in ours


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """A process environment with no AWS credentials anywhere (and no instance-metadata lookups)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_credentials_from_the_environment(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    provider = BedrockProvider(deployment(options={}))
    headers = dict(provider.signer.sign("/p", b"", []))
    assert "Credential=AKIDENV/" in headers["authorization"]


def test_credentials_from_a_profile(aws_env):
    (aws_env / "credentials").write_text("[team]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    provider = BedrockProvider(deployment(options={"aws_profile": "team"}))
    assert "Credential=AKIDPROFILE/" in dict(provider.signer.sign("/p", b"", []))["authorization"]
    with pytest.raises(ValueError, match="profile 'nope'"):
        BedrockProvider(deployment(options={"aws_profile": "nope"}))


def test_no_credentials_fail_the_request_not_the_start(aws_env):
    provider = BedrockProvider(deployment(options={}))
    with pytest.raises(errors.UpstreamAuthFailed, match="no AWS credentials"):
        provider.signer.sign("/p", b"", [])


def test_bedrock_api_key_is_sent_as_a_bearer_token_unsigned():
    d = Deployment("br1", "claude", "bedrock", model=PROFILE_MODEL, region="us-east-1",
                   api_key=Secret("bedrock-api-key-abc"), options={})
    provider = BedrockProvider(d)
    headers = provider.signer.sign("/p", b"{}", [("content-type", "application/json")])
    assert headers == [("content-type", "application/json"), ("authorization", "Bearer bedrock-api-key-abc")]
    assert "bedrock-api-key-abc" not in repr(provider.signer)


def test_endpoint_is_derived_from_the_region():
    provider = BedrockProvider(deployment())
    assert provider.endpoint() == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert provider.signer.host == "bedrock-runtime.us-east-1.amazonaws.com"


# --- the provider over a local socket --------------------------------------------------------------------------------


class FakeBedrock:
    """A scripted Bedrock on 127.0.0.1 that checks every signature like the real one."""

    def __init__(self):
        self.replies: list = []
        self.requests: list[tuple[str, dict]] = []

    async def handle(self, request):
        body = request.body
        headers = dict(request.headers)
        if not verify_signature(request.method, request.path, headers, body):
            return Response(403, b'{"message":"The request signature we calculated does not match"}',
                            [("x-amzn-errortype", "InvalidSignatureException:http://internal/")])
        self.requests.append((unquote(request.path), orjson.loads(body)))
        return self.replies.pop(0)


@pytest.fixture
async def fake():
    bedrock = FakeBedrock()
    server = await start_server(bedrock.handle, "127.0.0.1", 0)
    provider = BedrockProvider(deployment(f"http://127.0.0.1:{server.port}"))
    yield bedrock, provider
    await provider.aclose()
    await server.close(grace=0.1)


def json_reply(status: int, data: dict, *headers: tuple[str, str]) -> Response:
    return Response(status, orjson.dumps(data), [("content-type", "application/json"),
                                                  ("x-amzn-requestid", "3f1a-req"), *headers])


def stream_reply(frames: list[bytes]) -> StreamResponse:
    async def chunks():
        for f in frames:
            yield f

    return StreamResponse(200, chunks(), [("content-type", "application/vnd.amazon.eventstream")])


async def test_provider_chat(fake):
    bedrock, provider = fake
    bedrock.replies.append(json_reply(200, {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi!"}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}))
    resp = await provider.chat(chat([{"role": "user", "content": "hello"}]))
    assert (resp.id, resp.choices[0].content, resp.usage.total_tokens) == ("chatcmpl-3f1a-req", "Hi!", 5)
    path, body = bedrock.requests[0]
    assert path == f"/model/{PROFILE_MODEL}/converse"
    assert body == {"messages": [{"role": "user", "content": [{"text": "hello"}]}]}


async def test_provider_stream(fake):
    bedrock, provider = fake
    bedrock.replies.append(stream_reply(TOOL_STREAM))
    chunks = [c async for c in provider.chat_stream(chat([{"role": "user", "content": "hi"}], stream=True))]
    assert bedrock.requests[0][0] == f"/model/{PROFILE_MODEL}/converse-stream"
    assert chunks[0].role == "assistant" and chunks[-1].usage.total_tokens == 60
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_provider_stream_fails_before_first_chunk(fake):
    bedrock, provider = fake
    bedrock.replies.append(json_reply(429, {"message": "Too many requests, please wait before trying again."},
                                      ("x-amzn-errortype", "ThrottlingException:http://internal/")))
    stream = provider.chat_stream(chat([{"role": "user", "content": "hi"}], stream=True))
    with pytest.raises(errors.UpstreamRateLimited, match="Too many requests"):
        await stream.__anext__()
    bedrock.replies.append(stream_reply([exception("throttlingException", "slow down")]))
    stream = provider.chat_stream(chat([{"role": "user", "content": "hi"}], stream=True))
    with pytest.raises(errors.UpstreamRateLimited, match="slow down"):
        await stream.__anext__()


async def test_a_stream_answered_with_another_content_type_is_a_protocol_error(fake):
    """A 200 that is not an event stream (a proxy's HTML page, a JSON body) fails the attempt as the upstream's
    fault, so the dispatcher fails over; not a crash of the gateway."""
    bedrock, provider = fake
    bedrock.replies.append(Response(200, b"<html>maintenance</html>", [("content-type", "text/html")]))
    stream = provider.chat_stream(chat([{"role": "user", "content": "hi"}], stream=True))
    with pytest.raises(errors.UpstreamProtocolError, match="'text/html' instead of an event stream"):
        await stream.__anext__()


async def test_provider_validation_error_passes_through(fake):
    bedrock, provider = fake
    bedrock.replies.append(json_reply(400, {"message": "messages: the final message must be from the user"},
                                      ("x-amzn-errortype", "ValidationException:http://internal/")))
    with pytest.raises(errors.UpstreamClientError) as caught:
        await provider.chat(chat([{"role": "user", "content": "hi"}]))
    assert caught.value.status == 400 and not caught.value.retryable
    assert caught.value.message == "messages: the final message must be from the user"


async def test_wrong_secret_is_an_auth_failure_that_names_no_secret(fake):
    bedrock, provider = fake
    wrong = BedrockProvider(deployment(provider.deployment.base_url, options={
        "aws_access_key_id": Secret(KEY_ID), "aws_secret_access_key": Secret("a-different-secret")}))
    try:
        with pytest.raises(errors.UpstreamAuthFailed) as caught:
            await wrong.chat(chat([{"role": "user", "content": "hi"}]))
        assert "a-different-secret" not in caught.value.message
    finally:
        await wrong.aclose()


def test_package_exports_the_provider():
    assert bedrock_pkg.__all__ == ["BedrockProvider"]
    assert BedrockProvider.kind == "bedrock"


def test_plain_reads_text_deltas_only_and_changes_nothing():
    """What a translated stream's pipe may render on its own: whole text-delta frames, after the role chunk."""
    decoder = ConverseStreamDecoder("r1", "m", "br1")
    text = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    decoder.feed(event("messageStart", {"role": "assistant"}))
    assert decoder.plain(text) is None  # the role chunk is still held: the ordinary reading sends it first
    assert [c.role for c in decoder.feed(text)] == ["assistant", None]
    chunks = decoder.plain(text + text)
    assert chunks == decoder.feed(text) * 2
    tool = event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{"}}})
    for other in (tool, text + tool, text[:-3], event("messageStop", {"stopReason": "end_turn"}),
                  exception("throttlingException", "slow down")):
        assert decoder.plain(other) is None
    assert decoder._tool_index == {} and not decoder.stopped and decoder._buffer.pending == 0


def test_a_streamed_tool_call_without_input_has_empty_json_arguments():
    """A whole answer gives such a call "{}"; the stream gave "" (no JSON), which an OpenAI client fails to parse."""
    chunks = decode([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t1", "name": "now"}}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t2", "name": "at"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":"x"}'}}}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
    ])
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls or ():
            arguments[delta.index] = arguments.get(delta.index, "") + delta.arguments
    assert arguments == {0: "{}", 1: '{"city":"x"}'}


def test_tool_history_without_tools_still_carries_a_tool_config():
    """OpenAI takes a closing turn with tool calls in its history and no `tools`; Converse refuses tool blocks
    without a toolConfig ("The toolConfig field must be defined when using toolUse and toolResult")."""
    body = build_converse_body(chat([
        {"role": "user", "content": "Song on WZPZ?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'}}]},
        {"role": "tool", "tool_call_id": "a", "content": "Elemental Hotel"},
        {"role": "user", "content": "Sum it up."},
    ]), "br1")
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "top_song", "inputSchema": {"json": {
        "type": "object"}}}}]}
    assert "toolConfig" not in build_converse_body(chat([{"role": "user", "content": "hi"}]), "br1")
