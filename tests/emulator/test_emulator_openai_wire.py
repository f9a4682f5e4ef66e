"""The `openai` cloud at the byte level: SSE framing, headers, and OpenAI's validation errors."""

from __future__ import annotations

import httpx2
import orjson
import pytest
from openai import AsyncOpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

AUTH = {"authorization": "Bearer sk-test"}
HI = [{"role": "user", "content": "hello"}]


async def post(cloud, path: str, body, headers=None) -> httpx2.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx2.AsyncClient(base_url=cloud.base_url, timeout=5) as http:
        return await http.post(path, content=content, headers={**AUTH, "content-type": "application/json",
                                                               **(headers or {})})


async def sse_events(cloud, body) -> tuple[httpx2.Response, list[bytes]]:
    async with httpx2.AsyncClient(base_url=cloud.base_url, timeout=5) as http:
        async with http.stream("POST", "/chat/completions", json=body, headers=AUTH) as response:
            raw = b"".join([part async for part in response.aiter_bytes()])
    assert raw.endswith(b"\n\n")
    return response, raw[:-2].split(b"\n\n")


async def test_sse_framing_and_every_chunk_matches_the_spec(openai_cloud):
    response, events = await sse_events(openai_cloud, {"model": "gpt-4o-mini", "messages": HI, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == b"data: [DONE]"
    for event in events[:-1]:
        assert event.startswith(b"data: ") and b"\n" not in event
        chunk = orjson.loads(event[6:])
        validate("CreateChatCompletionStreamResponse", chunk)
        assert chunk["object"] == "chat.completion.chunk" and "usage" not in chunk
        assert isinstance(chunk["obfuscation"], str)  # OpenAI pads chunks unless told not to
    first = orjson.loads(events[0][6:])["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": "", "refusal": None} and first["logprobs"] is None


async def test_obfuscation_can_be_turned_off_and_usage_is_null_until_the_last_chunk(openai_cloud):
    _, events = await sse_events(openai_cloud, {
        "model": "gpt-4o-mini", "messages": HI, "stream": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False}})
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        assert "obfuscation" not in chunk
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_json_headers_and_request_id(openai_cloud):
    response = await post(openai_cloud, "/chat/completions", {"model": "gpt-4o-mini", "messages": HI})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")


BAD_REQUESTS = [
    (b"{not json", None, None),
    ({"model": "gpt-4o-mini"}, "messages", "missing_required_parameter"),
    ({"messages": HI}, "model", "missing_required_parameter"),
    ({"model": "gpt-4o-mini", "messages": []}, "messages", "empty_array"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "gpt-4o-mini", "messages": HI, "max_tokens": "10"}, "max_tokens", "invalid_type"),
    ({"model": "gpt-4o-mini", "messages": HI, "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "gpt-4o-mini", "messages": HI, "temperature": 3}, "temperature", "decimal_above_max_value"),
    ({"model": "gpt-4o-mini", "messages": HI, "n": 0}, "n", "integer_below_min_value"),
    ({"model": "gpt-4o-mini", "messages": HI, "stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
    ({"model": "gpt-4o-mini", "messages": HI, "frobnicate": 1}, None, None),
    ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content[0].type", "invalid_value"),
    ({"model": "gpt-4o-mini", "messages": HI, "stream_options": {"include_usage": True}}, "stream_options", None),
    ({"model": "gpt-4o-mini", "messages": HI, "tool_choice": "auto"}, "tool_choice", None),
    ({"model": "gpt-4o-mini", "messages": HI, "tools": [{"type": "function", "function": {"name": "a b"}}]},
     "tools[0].function.name", "invalid_value"),
    ({"model": "gpt-4o-mini", "messages": HI + [{"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
     "messages.[1].role", None),
    ({"model": "gpt-4o-mini", "messages": HI + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "and?"}]}, "messages.[1].role", None),
]


@pytest.mark.parametrize("body, param, code", BAD_REQUESTS)
async def test_invalid_chat_requests_get_openai_400s(openai_cloud, body, param, code):
    response = await post(openai_cloud, "/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()
    validate("ErrorResponse", error)
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["param"], error["error"]["code"]) == (param, code)


@pytest.mark.parametrize("body, param", [
    ({"model": "text-embedding-3-small"}, "input"),
    ({"model": "text-embedding-3-small", "input": ""}, None),
    ({"model": "text-embedding-3-small", "input": [1, "a"]}, None),
    ({"model": "text-embedding-3-small", "input": "a", "encoding_format": "hex"}, "encoding_format"),
    ({"model": "text-embedding-3-small", "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "a", "extra": 1}, None),
])
async def test_invalid_embedding_requests(openai_cloud, body, param):
    response = await post(openai_cloud, "/embeddings", body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param


async def test_a_full_tool_round_trip_is_valid(openai_cloud):
    messages = HI + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
    ]
    body = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2, "seed": 3, "user": "u1"}
    validate("CreateChatCompletionRequest", body)
    response = await post(openai_cloud, "/chat/completions", body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] > 85  # the image counts


async def test_unknown_route_missing_key_and_too_large_body(make_cloud):
    cloud = await make_cloud(name="strict", api_key="sk-test", max_body_bytes=1024)
    async with httpx2.AsyncClient(base_url=cloud.base_url, timeout=5) as http:
        response = await http.get("/chat/completions", headers=AUTH)
        assert response.status_code == 404 and "Invalid URL" in response.json()["error"]["message"]
        response = await http.post("/chat/completions", json={"model": "m", "messages": HI})
        assert response.status_code == 401 and "didn't provide an API key" in response.json()["error"]["message"]
        validate("ErrorResponse", response.json())
        response = await http.post("/chat/completions", headers=AUTH, content=b"x" * 4096)
        assert response.status_code == 413
        validate("ErrorResponse", response.json())


async def test_sdk_requests_are_recorded_redacted_and_valid(openai_cloud):
    api = track(AsyncOpenAI(base_url=openai_cloud.base_url, api_key="sk-test", max_retries=0))
    await api.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=5, stream=True,
                                      stream_options={"include_usage": True})
    (recorded,) = openai_cloud.recent_requests
    assert recorded["headers"]["authorization"] == "<redacted>"
    validate("CreateChatCompletionRequest", recorded["body"])
    assert recorded["body"]["max_tokens"] == 5
