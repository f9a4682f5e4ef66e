"""Gemini / Vertex translation: request building (the google-genai SDK's wire types are the judge of the shape),
response parsing, SSE stream decoding, error mapping, Vertex auth, and both providers over a local socket."""

from __future__ import annotations

import asyncio
import datetime
import sys

import orjson
import pytest
from google.genai import types

from skyrelay import errors
from skyrelay.canonical import ChatRequest, EmbeddingRequest
from skyrelay.config.model import Deployment, Secret, Timeouts
from skyrelay.net.server import Response, StreamResponse, start_server
from skyrelay.providers import PROVIDERS
from skyrelay.providers.gemini import GeminiProvider, VertexProvider
from skyrelay.providers.gemini.auth import GoogleCredentialsToken, StaticToken
from skyrelay.providers.gemini.callids import new_call_id, signature_of
from skyrelay.providers.gemini.embed import build_embed_request, parse_embed_response
from skyrelay.providers.gemini.failures import error_from_body, error_from_response
from skyrelay.providers.gemini.request import build_request
from skyrelay.providers.gemini.response import parse_response
from skyrelay.providers.gemini.stream import StreamDecoder

KEY = "AIza-test-key-never-printed"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
SIGNATURE = "CiQB0e2Kb+/vTH8s1Jv3dP0="  # opaque to clients: base64 of whatever Gemini chose
LIGHTS_TOOL = {"type": "function", "function": {
    "name": "set_light_values", "description": "Sets the brightness and color temperature of a light.",
    "parameters": {"type": "object", "properties": {
        "brightness": {"type": "integer", "description": "Light level from 0 to 100."},
        "color_temp": {"type": "string", "enum": ["daylight", "cool", "warm"]}},
        "required": ["brightness", "color_temp"]}}}


def chat(messages, **kw) -> ChatRequest:
    return ChatRequest(model="gemini", messages=messages, **kw)


def build(req: ChatRequest, model: str = "gemini-2.5-flash", kind: str = "gemini") -> dict:
    body = build_request(req, "g1", kind, model)
    assert_wire_valid(body)
    return body


def assert_wire_valid(body: dict) -> None:
    """The google-genai SDK's types forbid unknown fields: every piece of the body must parse as its type."""
    assert set(body) <= {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    for content in body["contents"]:
        types.Content.model_validate_json(orjson.dumps(content))
    if "systemInstruction" in body:
        types.Content.model_validate_json(orjson.dumps(body["systemInstruction"]))
    for tool in body.get("tools", ()):
        types.Tool.model_validate_json(orjson.dumps(tool))
    if "toolConfig" in body:
        types.ToolConfig.model_validate_json(orjson.dumps(body["toolConfig"]))
    if "generationConfig" in body:
        types.GenerationConfig.model_validate_json(orjson.dumps(body["generationConfig"]))


# --- request building ---------------------------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_instruction():
    body = build(chat([{"role": "system", "content": "You are a cat."}, {"role": "developer", "content": "Be brief."},
                       {"role": "user", "content": "Hello there"}]))
    assert body["systemInstruction"] == {"parts": [{"text": "You are a cat."}, {"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
    assert "generationConfig" not in body


def test_multi_turn_history_uses_model_role_and_merges_consecutive_turns():
    body = build(chat([
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Great to meet you."},
        {"role": "assistant", "content": [{"type": "text", "text": "What would you like to know?"}]},
        {"role": "user", "content": "I have two dogs."},
        {"role": "user", "content": [{"type": "text", "text": "Paws?"}]},
        {"role": "assistant", "content": None},  # nothing to say: Gemini refuses turns without parts
    ]))
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Great to meet you."}, {"text": "What would you like to know?"}]},
        {"role": "user", "parts": [{"text": "I have two dogs."}, {"text": "Paws?"}]},
    ]


@pytest.mark.parametrize("url, part", [
    (f"data:image/png;base64,{PNG}", {"inlineData": {"mimeType": "image/png", "data": PNG}}),
    ("gs://cloud-samples-data/generative-ai/image/scones.jpg",
     {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://cloud-samples-data/generative-ai/image/scones.jpg"}}),
    ("https://generativelanguage.googleapis.com/v1beta/files/abc-123",
     {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"}}),
])
def test_images(url, part):
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]
    body = build(chat([{"role": "user", "content": content}]))
    assert body["contents"][0]["parts"] == [{"text": "What is in this picture?"}, part]


def test_audio_and_pdf_parts_are_inline_data():
    content = [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
               {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]
    parts = build(chat([{"role": "user", "content": content}]))["contents"][0]["parts"]
    assert parts == [{"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                     {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}]


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://example.com/cat.png", "data:image/png,raw"])
def test_unreadable_image_urls_are_refused_naming_the_deployment(url):
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(errors.InvalidRequest) as caught:
        build_request(chat([{"role": "user", "content": content}]), "g1", "gemini", "gemini-2.5-flash")
    assert caught.value.status == 400 and caught.value.param == "messages[0].content[0]"
    if url.startswith("http"):
        assert "deployment 'g1' (gemini)" in caught.value.message and "data: URL" in caught.value.message


def test_uploaded_gemini_files_are_not_vertex_files():
    content = [{"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/x"}}]
    with pytest.raises(errors.InvalidRequest, match=r"deployment 'g1' \(vertex\)"):
        build_request(chat([{"role": "user", "content": content}]), "g1", "vertex", "gemini-2.5-flash")


@pytest.mark.parametrize("choice, config", [
    (None, None),
    ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
    ("none", {"functionCallingConfig": {"mode": "NONE"}}),
    ("required", {"functionCallingConfig": {"mode": "ANY"}}),
    ({"type": "function", "function": {"name": "set_light_values"}},
     {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["set_light_values"]}}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "set_light_values"}}]}},
     {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["set_light_values"]}}),
])
def test_tools_and_tool_choice(choice, config):
    body = build(chat([{"role": "user", "content": "Dim the lights"}], tools=[LIGHTS_TOOL], tool_choice=choice))
    assert body["tools"] == [{"functionDeclarations": [{
        "name": "set_light_values", "description": "Sets the brightness and color temperature of a light.",
        "parameters": {"type": "OBJECT", "properties": {
            "brightness": {"type": "INTEGER", "description": "Light level from 0 to 100."},
            "color_temp": {"type": "STRING", "enum": ["daylight", "cool", "warm"]}},
            "required": ["brightness", "color_temp"]}}]}]
    assert body.get("toolConfig") == config


def test_allowed_tools_in_auto_mode_offers_only_those_tools():
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
        {"type": "function", "function": {"name": "get_time"}}]}}
    body = build(chat([{"role": "user", "content": "Time?"}], tools=[LIGHTS_TOOL, other], tool_choice=choice))
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_time"}]}]  # no properties: no parameters
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},  # OpenAI strict
    {"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"type": "string"}}},
    {"type": "object", "properties": {"a": {"type": ["string", "integer"]}}},
    {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}},
    {"type": "object", "properties": {"a": {"const": 3}}},
])
def test_schemas_beyond_the_openapi_subset_go_as_json_schema_unchanged(schema):
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    declaration = build(chat([{"role": "user", "content": "x"}], tools=[tool]))["tools"][0]["functionDeclarations"][0]
    assert declaration == {"name": "f", "parametersJsonSchema": schema}


def test_nullable_union_converts_to_the_openapi_subset():
    schema = {"type": "object", "properties": {"n": {"type": ["integer", "null"], "minimum": 0},
                                               "tags": {"type": "array", "items": {"type": "string"}}}}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    declaration = build(chat([{"role": "user", "content": "x"}], tools=[tool]))["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters"] == {"type": "OBJECT", "properties": {
        "n": {"type": "INTEGER", "nullable": True, "minimum": 0},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}}}}


def test_tool_calls_and_results_round_trip_with_names_found_by_id():
    body = build(chat([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny, 25C"},
        {"role": "user", "content": "Thanks!"},
    ]))
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 25C"}}},
            {"text": "Thanks!"}]},
    ]


@pytest.mark.parametrize("content, response", [
    ("[1, 2]", {"result": [1, 2]}), ("42", {"result": 42}), ("", {"result": ""}),
    ([{"type": "text", "text": '{"ok": true}'}], {"ok": True}),
])
def test_tool_results_that_are_not_objects_are_wrapped(content, response):
    messages = [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "c", "content": content}]
    parts = build(chat(messages))["contents"][1]["parts"]
    assert parts == [{"functionResponse": {"name": "f", "response": response}}]


def test_a_tool_result_for_an_unknown_call_is_refused():
    with pytest.raises(errors.InvalidRequest) as caught:
        build_request(chat([{"role": "tool", "tool_call_id": "nope", "content": "1"}]), "g1", "gemini", "m")
    assert caught.value.param == "messages[0].tool_call_id"


def test_thought_signatures_travel_in_tool_call_ids():
    response = parse_response({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "check_flight", "args": {"flight": "AA100"}}, "thoughtSignature": SIGNATURE}]},
        "finishReason": "STOP"}]}, "g1", "gemini-3-pro-preview")
    call = response.choices[0].tool_calls[0]
    assert signature_of(call.id) == SIGNATURE and all(c.isalnum() or c in "_-" for c in call.id)
    history = [{"role": "user", "content": "Is AA100 on time?"},
               {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function",
                                                     "function": {"name": call.name, "arguments": call.arguments}}]},
               {"role": "tool", "tool_call_id": call.id, "content": '{"status": "delayed"}'}]
    body = build(chat(history), model="gemini-3-pro-preview")
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "check_flight", "args": {"flight": "AA100"}}, "thoughtSignature": SIGNATURE}]


@pytest.mark.parametrize("model, expected", [
    ("gemini-3-flash-preview", [{"functionCall": {"name": "f", "args": {}},
                                 "thoughtSignature": "skip_thought_signature_validator"},
                                {"functionCall": {"name": "f", "args": {}}}]),
    ("gemini-2.5-flash", [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "f", "args": {}}}]),
])
def test_foreign_tool_calls_get_the_documented_placeholder_signature_on_gemini_3(model, expected):
    calls = [{"id": f"toolu_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    body = build(chat([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": calls}]), model=model)
    assert body["contents"][1]["parts"] == expected


def test_call_ids_without_a_signature():
    assert signature_of(new_call_id()) is None and signature_of("call_abc") is None
    assert new_call_id().startswith("call_") and len(new_call_id()) == 29


def test_generation_config():
    req = chat([{"role": "user", "content": "Tell me a story"}], max_tokens=200, temperature=0.7, top_p=0.9,
               stop=["The end", "\n\n"], extra={"n": 2, "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5,
                                                "user": "u-1", "metadata": {"a": "b"}, "store": False,
                                                "parallel_tool_calls": True, "logprobs": False})
    assert build(req)["generationConfig"] == {
        "maxOutputTokens": 200, "temperature": 0.7, "topP": 0.9, "stopSequences": ["The end", "\n\n"],
        "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5}


@pytest.mark.parametrize("fmt, expected", [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"responseMimeType": "application/json"}),
    ({"type": "json_schema", "json_schema": {"name": "recipe", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
     {"responseMimeType": "application/json", "responseSchema": {
         "type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"]}}),
    ({"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}}},
     {"responseMimeType": "application/json", "responseJsonSchema": {
         "type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}}),
])
def test_response_format(fmt, expected):
    assert build(chat([{"role": "user", "content": "x"}], response_format=fmt)).get("generationConfig") == expected


@pytest.mark.parametrize("model, effort, config", [
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
    ("gemini-3-pro-preview", "high", {"thinkingLevel": "HIGH"}),
])
def test_reasoning_effort(model, effort, config):
    body = build(chat([{"role": "user", "content": "x"}], extra={"reasoning_effort": effort}), model=model)
    assert body["generationConfig"] == {"thinkingConfig": config}


@pytest.mark.parametrize("extra, param", [
    ({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"), ({"logit_bias": {"50256": -100}},
                                                                                 "logit_bias"),
    ({"functions": [{"name": "f"}]}, "functions"), ({"audio": {"voice": "alloy"}}, "audio"),
    ({"n": 0}, "n"), ({"seed": "7"}, "seed"), ({"reasoning_effort": "xhigh"}, "reasoning_effort"),
])
def test_features_gemini_cannot_honour_are_refused(extra, param):
    with pytest.raises(errors.InvalidRequest) as caught:
        build_request(chat([{"role": "user", "content": "x"}], extra=extra), "g1", "gemini", "gemini-2.5-flash")
    assert caught.value.param == param and caught.value.status == 400


def test_unsupported_tool_types_are_refused():
    with pytest.raises(errors.InvalidRequest, match="'web_search'"):
        build_request(chat([{"role": "user", "content": "x"}], tools=[{"type": "web_search"}]), "g1", "gemini", "m")


# --- responses ------------------------------------------------------------------------------------------------------


def parse(data: dict, model: str = "gemini-2.5-flash"):
    types.GenerateContentResponse.model_validate_json(orjson.dumps(data))  # the fixture is a real response shape
    return parse_response(data, "g1", model)


def test_text_response_with_usage():
    resp = parse({
        "candidates": [{"content": {"parts": [{"text": "Hello! How "}, {"text": "can I help?"}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 7, "thoughtsTokenCount": 20,
                          "cachedContentTokenCount": 4, "totalTokenCount": 36},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "mEXsaOfbN5qJ"})
    assert resp.id == "chatcmpl-mEXsaOfbN5qJ" and resp.model == "gemini-2.5-flash-001" and resp.raw is None
    choice = resp.choices[0]
    assert (choice.content, choice.finish_reason, choice.tool_calls) == ("Hello! How can I help?", "stop", [])
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (9, 27, 4)


def test_function_call_response():
    resp = parse({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me check.", "thought": True},  # a thought summary: not part of the answer
        {"functionCall": {"name": "set_light_values", "args": {"brightness": 25, "color_temp": "warm"}}}]},
        "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 8}})
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.content is None
    call = choice.tool_calls[0]
    assert call.name == "set_light_values" and call.id.startswith("call_")
    assert orjson.loads(call.arguments) == {"brightness": 25, "color_temp": "warm"}


@pytest.mark.parametrize("reason, finish", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"),
])
def test_finish_reasons(reason, finish):
    resp = parse({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}]})
    assert resp.choices[0].finish_reason == finish


def test_blocked_prompt_is_a_content_filter_with_empty_content():
    resp = parse({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}})
    assert [(c.content, c.finish_reason) for c in resp.choices] == [("", "content_filter")]
    assert resp.usage.input_tokens == 12


def test_several_candidates():
    resp = parse({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1}]})
    assert [(c.index, c.content, c.finish_reason) for c in resp.choices] == [(0, "A", "stop"), (1, "B", "length")]


def test_a_body_without_candidates_is_a_protocol_error():
    with pytest.raises(errors.UpstreamProtocolError):
        parse_response({"usageMetadata": {}}, "g1", "m")


# --- streams --------------------------------------------------------------------------------------------------------


def decode(events: list[dict], model: str = "gemini-2.5-flash") -> list:
    decoder = StreamDecoder("g1", model)
    chunks = []
    for event in events:
        chunks += decoder.decode(None, orjson.dumps(event))
    return chunks + decoder.finish()


def test_text_stream_follows_openais_sequence():
    chunks = decode([
        {"candidates": [{"content": {"parts": [{"text": "The"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}, "modelVersion": "gemini-2.5-flash",
         "responseId": "r1"},
        {"candidates": [{"content": {"parts": [{"text": " sky is blue."}], "role": "model"}, "index": 0}]},
        {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 6, "totalTokenCount": 11}},
    ])
    assert [(c.role, c.content, c.finish_reason) for c in chunks] == [
        ("assistant", "", None), (None, "The", None), (None, " sky is blue.", None), (None, None, "stop"),
        (None, None, None)]
    assert {(c.id, c.model, c.created) for c in chunks} == {("chatcmpl-r1", "gemini-2.5-flash", chunks[0].created)}
    usage = chunks[-1].usage
    assert (usage.input_tokens, usage.output_tokens) == (5, 6)
    assert all(c.usage is None for c in chunks[:-1])


def test_function_calls_arrive_whole_in_a_stream():
    chunks = decode([
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10}},
    ])
    calls = [tc for c in chunks if c.tool_calls for tc in c.tool_calls]
    assert [(tc.index, tc.name, orjson.loads(tc.arguments)) for tc in calls] == [
        (0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Rome"})]
    assert signature_of(calls[0].id) == SIGNATURE and signature_of(calls[1].id) is None
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


def test_a_blocked_prompt_in_a_stream():
    chunks = decode([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                      "usageMetadata": {"promptTokenCount": 8}}])
    assert [(c.role, c.finish_reason) for c in chunks[:2]] == [("assistant", None), (None, "content_filter")]
    assert chunks[-1].usage.input_tokens == 8


def test_an_error_event_raises_a_typed_error():
    decoder = StreamDecoder("g1", "m")
    with pytest.raises(errors.UpstreamRateLimited):
        decoder.decode(None,
                       b'{"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}')


def test_a_stream_cut_before_its_finish_reason_is_an_error():
    decoder = StreamDecoder("g1", "m")
    decoder.decode(None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hal"}]}}]}))
    with pytest.raises(errors.UpstreamProtocolError, match="finish reason"):
        decoder.finish()
    with pytest.raises(errors.UpstreamProtocolError, match="before any event"):
        StreamDecoder("g1", "m").finish()


# --- errors ---------------------------------------------------------------------------------------------------------


def google_error(code: int, status: str, message: str, *details: dict) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": list(details)}})


RETRY_30S = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
KEY_INVALID = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
               "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}


@pytest.mark.parametrize("status, body, headers, kind, retryable, retry_after", [
    (429, google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", RETRY_30S), {}, errors.UpstreamRateLimited,
     True, 30.0),
    (429, google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), {"retry-after": "7"}, errors.UpstreamRateLimited,
     True, 7.0),
    (400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", KEY_INVALID), {},
     errors.UpstreamAuthFailed, True, None),
    (400, google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), {},
     errors.UpstreamClientError, False, None),
    (400, google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), {},
     errors.UpstreamUnavailable, True, None),
    (401, google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), {},
     errors.UpstreamAuthFailed, True, None),
    (403, google_error(403, "PERMISSION_DENIED", "Permission denied on resource project p."), {},
     errors.UpstreamAuthFailed, True, None),
    (404, google_error(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"), {},
     errors.UpstreamUnavailable, True, None),
    # A file the request names, expired or another project's: the client's, not the deployment's credentials.
    (403, google_error(403, "PERMISSION_DENIED", "You do not have permission to access the File abc123 or it may "
                                                 "not exist."), {}, errors.UpstreamClientError, False, None),
    (404, google_error(404, "NOT_FOUND", "No such object: bucket/docs/report.pdf"), {}, errors.UpstreamClientError,
     False, None),
    (500, google_error(500, "INTERNAL", "An internal error has occurred."), {}, errors.UpstreamUnavailable, True, None),
    (503, google_error(503, "UNAVAILABLE", "The model is overloaded."), {}, errors.UpstreamUnavailable, True, None),
    (504, google_error(504, "DEADLINE_EXCEEDED", "Deadline exceeded."), {}, errors.UpstreamTimeout, True, None),
    (502, b"<html>Bad Gateway</html>", {}, errors.UpstreamUnavailable, True, None),
])
def test_error_mapping(status, body, headers, kind, retryable, retry_after):
    err = error_from_response(status, headers, body, "g1")
    assert type(err) is kind and err.retryable is retryable and err.retry_after == retry_after
    assert err.deployment == "g1"


def test_client_errors_pass_googles_message_through_as_400():
    err = error_from_body({"code": 400, "message": "* GenerateContentRequest.contents: contents is not specified",
                           "status": "INVALID_ARGUMENT"}, "g1")
    assert err.status == 400 and err.message.startswith("* GenerateContentRequest.contents")


# --- Vertex auth ----------------------------------------------------------------------------------------------------


class FakeCredentials:
    """Stands in for google-auth credentials: refresh() would call Google's token endpoint."""

    def __init__(self, lifetime: float):
        self.lifetime = lifetime
        self.refreshes = 0
        self.token = None
        self.expiry = None

    def refresh(self, request):
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.expiry = now + datetime.timedelta(seconds=self.lifetime)


async def test_credentials_are_refreshed_once_for_concurrent_requests_and_again_when_stale():
    fresh = FakeCredentials(lifetime=3600)
    source = GoogleCredentialsToken(fresh, "v1")
    headers = await asyncio.gather(*(source.header() for _ in range(10)))
    assert set(headers) == {("authorization", "Bearer ya29.token-1")} and fresh.refreshes == 1
    assert "ya29" not in repr(source)
    stale = FakeCredentials(lifetime=60)  # inside the refresh margin: every use refreshes
    source = GoogleCredentialsToken(stale, "v1")
    await source.header()
    assert await source.header() == ("authorization", "Bearer ya29.token-2")


def vertex_deployment(base_url=None, options=None, api_key=KEY, model="gemini-2.5-flash", region=None) -> Deployment:
    return Deployment("v1", "gemini", "vertex", model=model, base_url=base_url,
                      api_key=Secret(api_key) if api_key else None, region=region,
                      timeouts=Timeouts(connect=1, first_byte=2, total=5),
                      options={"project": "my-project", "location": "europe-west4"} if options is None else options)


def test_vertex_endpoints_and_paths():
    provider = VertexProvider(vertex_deployment())
    assert provider.endpoint() == "https://europe-west4-aiplatform.googleapis.com"
    assert provider.generate_path == ("/v1/projects/my-project/locations/europe-west4/publishers/google/models/"
                                      "gemini-2.5-flash:generateContent")
    assert isinstance(provider.token, StaticToken) and KEY not in repr(provider.token)
    assert VertexProvider(vertex_deployment(options={"project": "p", "location": "global"})).endpoint() == (
        "https://aiplatform.googleapis.com")
    assert VertexProvider(vertex_deployment(options={"project": "p"}, region="asia-northeast1")).endpoint() == (
        "https://asia-northeast1-aiplatform.googleapis.com")


def test_vertex_credentials_file_without_google_auth_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.oauth2", None)  # import google.oauth2 now fails
    with pytest.raises(ValueError, match="google-auth"):
        VertexProvider(vertex_deployment(api_key=None, options={"project": "p", "credentials_file": "/k.json"}))


def test_vertex_unreadable_credentials_file_is_a_configuration_error(tmp_path):
    bad = tmp_path / "key.json"
    bad.write_text('{"type": "service_account"}')
    for path in (str(bad), str(tmp_path / "missing.json")):
        with pytest.raises(ValueError, match="credentials_file"):
            VertexProvider(vertex_deployment(api_key=None, options={"project": "p", "credentials_file": path}))


def test_both_kinds_are_registered():
    assert PROVIDERS["gemini"] is GeminiProvider and PROVIDERS["vertex"] is VertexProvider


# --- embeddings (translation only: tests/e2e/test_provider_gemini.py proves the wire against the emulator) -------

EMBED_WHERE = "deployment 'g1' (gemini)"


def test_embedding_inputs_become_one_batch_request_each():
    req = EmbeddingRequest(model="emb", input=["a", "b"], extra={"dimensions": 2, "encoding_format": "base64",
                                                                  "user": "u-1"})
    body = build_embed_request(req, "models/gemini-embedding-001", EMBED_WHERE)
    assert body == {"requests": [{"model": "models/gemini-embedding-001", "outputDimensionality": 2,
                                  "content": {"parts": [{"text": text}]}} for text in ("a", "b")]}
    for request in body["requests"]:
        types.Content.model_validate_json(orjson.dumps(request["content"]))
    single = build_embed_request(EmbeddingRequest(model="emb", input="solo"), "models/m", EMBED_WHERE)
    assert single == {"requests": [{"model": "models/m", "content": {"parts": [{"text": "solo"}]}}]}


@pytest.mark.parametrize("input_, extra, error, param", [
    ([[1, 2, 3]], {}, errors.UnsupportedFeature, "input"),
    ([], {}, errors.UnsupportedFeature, "input"),
    ("a", {"dimensions": 0}, errors.UnsupportedFeature, "dimensions"),
    ("a", {"dimensions": True}, errors.UnsupportedFeature, "dimensions"),
    ("a", {"truncate": "END"}, errors.UnsupportedFeature, "truncate"),
    ("a", {"encoding_format": "int8"}, errors.InvalidRequest, "encoding_format"),
])
def test_embedding_requests_gemini_cannot_honour_are_refused(input_, extra, error, param):
    with pytest.raises(error) as caught:
        build_embed_request(EmbeddingRequest(model="emb", input=input_, extra=extra), "models/m", EMBED_WHERE)
    assert caught.value.param == param


def test_embedding_replies_in_float_or_base64():
    data = {"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}], "usageMetadata": {"promptTokenCount": 3}}
    floats = parse_embed_response(data, EmbeddingRequest(model="emb", input=["a", "b"]), "gemini-embedding-001", "g1")
    assert floats.model == "gemini-embedding-001" and floats.usage.input_tokens == 3
    assert floats.data == [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
                           {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}]
    packed = parse_embed_response({"embeddings": data["embeddings"]}, EmbeddingRequest(
        model="emb", input=["a", "b"], extra={"encoding_format": "base64"}), "gemini-embedding-001", "g1")
    assert [d["embedding"] for d in packed.data] == ["AAAAPwAAgL8=", "AACAPgAAAEA="]  # little-endian float32s
    assert packed.usage.input_tokens == 0


@pytest.mark.parametrize("data", [{}, {"embeddings": {"values": []}}, {"embeddings": [{"vals": [1.0]}]}, []])
def test_malformed_embedding_replies_are_protocol_errors(data):
    with pytest.raises(errors.UpstreamProtocolError):
        parse_embed_response(data, EmbeddingRequest(model="emb", input="a"), "m", "g1")


# --- the providers over a local socket ------------------------------------------------------------------------------


class FakeGoogle:
    """A scripted Google endpoint on 127.0.0.1 that records what it was sent."""

    def __init__(self):
        self.replies: list = []
        self.requests: list[dict] = []

    async def handle(self, request):
        self.requests.append({"path": request.path, "query": request.query, "headers": dict(request.headers),
                              "body": orjson.loads(request.body)})
        return self.replies.pop(0)


def json_reply(status: int, data: dict) -> Response:
    return Response(status, orjson.dumps(data), [("content-type", "application/json; charset=UTF-8")])


def sse_reply(events: list[dict]) -> StreamResponse:
    async def chunks():
        for event in events:
            yield b"data: " + orjson.dumps(event) + b"\r\n\r\n"  # Google ends SSE lines with CRLF

    return StreamResponse(200, chunks(), [("content-type", "text/event-stream")])


@pytest.fixture
async def google():
    fake = FakeGoogle()
    server = await start_server(fake.handle, "127.0.0.1", 0)
    made = []

    def provider(cls=GeminiProvider, path="", **kw):
        base_url = f"http://127.0.0.1:{server.port}{path}"
        if cls is VertexProvider:
            made.append(VertexProvider(vertex_deployment(base_url, **kw)))
        else:
            made.append(GeminiProvider(Deployment("g1", "gemini", "gemini", model="gemini-2.5-flash", base_url=base_url,
                                                  api_key=Secret(KEY), headers={"x-team": "blue"},
                                                  timeouts=Timeouts(connect=1, first_byte=2, total=5))))
        return made[-1]

    yield fake, provider
    for p in made:
        await p.aclose()
    await server.close(grace=0.1)


HELLO = chat([{"role": "user", "content": "hello"}])
HI = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi!"}]}, "finishReason": "STOP"}],
      "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2}, "modelVersion": "gemini-2.5-flash"}


async def test_gemini_chat_over_the_wire(google):
    fake, provider = google
    fake.replies.append(json_reply(200, HI))
    resp = await provider().chat(HELLO)
    assert resp.choices[0].content == "Hi!" and resp.usage.total_tokens == 4
    sent = fake.requests[0]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == KEY and sent["headers"]["x-team"] == "blue"
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


async def test_a_versioned_base_url_is_used_as_it_is(google):
    fake, provider = google
    fake.replies.append(json_reply(200, HI))
    await provider(path="/v1").chat(HELLO)
    assert fake.requests[0]["path"] == "/v1/models/gemini-2.5-flash:generateContent"


async def test_gemini_stream_over_the_wire(google):
    fake, provider = google
    fake.replies.append(sse_reply([
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": " there"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2}}]))
    chunks = [c async for c in provider().chat_stream(HELLO)]
    assert "".join(c.content or "" for c in chunks) == "Hi there"
    assert chunks[-1].usage.output_tokens == 2
    assert (fake.requests[0]["path"], fake.requests[0]["query"]) == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")


async def test_a_stream_that_fails_to_start_raises_before_its_first_chunk(google):
    fake, provider = google
    fake.replies.append(json_reply(429, orjson.loads(google_error(429, "RESOURCE_EXHAUSTED", "slow down", RETRY_30S))))
    stream = provider().chat_stream(HELLO)
    with pytest.raises(errors.UpstreamRateLimited) as caught:
        await stream.__anext__()
    assert caught.value.retry_after == 30.0 and KEY not in caught.value.message


async def test_an_error_event_first_in_the_stream_fails_over_invisibly(google):
    fake, provider = google
    fake.replies.append(sse_reply([{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]))
    with pytest.raises(errors.UpstreamUnavailable):
        await provider().chat_stream(HELLO).__anext__()


async def test_vertex_chat_over_the_wire(google):
    fake, provider = google
    fake.replies.append(json_reply(200, HI))
    await provider(VertexProvider).chat(HELLO)
    sent = fake.requests[0]
    assert sent["path"] == ("/v1/projects/my-project/locations/europe-west4/publishers/google/models/"
                            "gemini-2.5-flash:generateContent")
    assert sent["headers"]["authorization"] == f"Bearer {KEY}" and "x-goog-api-key" not in sent["headers"]
