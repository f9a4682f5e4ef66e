"""Every client mistake gets OpenAI's error JSON with the right status, never a 500."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from tests.support.openai_schema import validate

HELLO = [{"role": "user", "content": "hello"}]


def post(stack, body: bytes | dict, path: str = "/chat/completions", key: str | None = "default", **headers):
    hdrs = {"content-type": "application/json", **headers}
    if key is not None:
        hdrs["authorization"] = f"Bearer {stack.key if key == 'default' else key}"
    content = body if isinstance(body, bytes) else httpx.Request("POST", "http://x", json=body).content
    return httpx.post(f"{stack.base_url}{path}", content=content, headers=hdrs, timeout=10)


def assert_error(resp, status: int, fragment: str = ""):
    assert resp.status_code == status, resp.text
    body = resp.json()
    validate("ErrorResponse", body)
    assert fragment.lower() in body["error"]["message"].lower()
    return body["error"]


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    ({"messages": HELLO}, "model"),
    ({"model": "chat"}, "messages"),
    ({"model": "chat", "messages": []}, "at least one"),
    ({"model": 3, "messages": HELLO}, "model"),
    ({"model": "chat", "messages": "hi"}, "messages"),
    ({"model": "chat", "messages": [{"content": "x"}]}, "role"),
    ({"model": "chat", "messages": [{"role": "user", "content": 5}]}, "content"),
    ({"model": "chat", "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "chat", "messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"model": "chat", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"model": "chat", "messages": HELLO, "stop": [1]}, "stop"),
    ({"model": "chat", "messages": HELLO, "stream_options": {"include_usage": "y"}}, "include_usage"),
])
def test_bad_chat_bodies_are_400(stack, body, fragment):
    assert_error(post(stack, body), 400, fragment)


def test_bad_embedding_bodies_are_400(stack):
    assert_error(post(stack, {"model": "embed"}, "/embeddings"), 400, "input")
    assert_error(post(stack, {"model": "embed", "input": 5}, "/embeddings"), 400, "input")


def test_unknown_model_is_404_with_sdk(stack):
    with pytest.raises(openai.NotFoundError) as exc:
        stack.openai().chat.completions.create(model="no-such-model", messages=HELLO)
    assert "no-such-model" in str(exc.value)


def test_missing_and_wrong_key_are_401(stack):
    assert_error(post(stack, {"model": "chat", "messages": HELLO}, key=None), 401, "missing")
    assert_error(post(stack, {"model": "chat", "messages": HELLO}, key="sk-wrong"), 401, "invalid")
    bad = openai.OpenAI(base_url=stack.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="chat", messages=HELLO)


def test_other_key_headers_accepted(stack):
    resp = httpx.post(f"{stack.base_url}/chat/completions", json={"model": "chat", "messages": HELLO},
                      headers={"api-key": stack.key})
    assert resp.status_code == 200


def test_body_over_limit_is_413(make_stack):
    small = make_stack(server={"max_body_bytes": 2048})
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_error(post(small, big), 413, "larger")
    with pytest.raises(openai.APIStatusError) as exc:
        small.openai().chat.completions.create(model="chat", messages=big["messages"])
    assert exc.value.status_code == 413


def test_unknown_route_and_wrong_method(stack):
    assert_error(post(stack, {}, "/nothing/here"), 404, "unknown request url")
    resp = httpx.get(f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {stack.key}"})
    assert_error(resp, 405, "not allowed")


def test_upstream_client_error_passes_through_unretried(make_stack):
    """A 400 from the upstream is the client's mistake: its message reaches the client and no other cloud is tried."""
    s = make_stack()
    for cloud in s.clouds:
        s.set_faults(cloud, [{"status": 400, "rate": 1.0, "message": "temperature is out of range"}])
    resp = post(s, {"model": "chat", "messages": HELLO})
    error = assert_error(resp, 400, "temperature is out of range")
    assert error["type"] == "invalid_request_error"
    total = sum(s.clouds[c].stats["requests"] for c in s.clouds)
    assert total == 1


def test_all_failing_is_502_or_503_with_a_message(make_stack):
    s = make_stack()
    for cloud in s.clouds:
        s.set_faults(cloud, [{"status": 500, "rate": 1.0}])
    with pytest.raises(openai.APIStatusError) as exc:
        s.openai().chat.completions.create(model="chat", messages=HELLO)
    assert exc.value.status_code in (502, 503)
    message = str(exc.value)
    assert "cloud-a" in message and "cloud-b" in message and "500" in message


def test_all_rate_limited_is_429_with_retry_after(make_stack):
    s = make_stack()
    for cloud in s.clouds:
        s.set_faults(cloud, [{"status": 429, "rate": 1.0, "retry_after": 7}])
    resp = post(s, {"model": "chat", "messages": HELLO})
    assert_error(resp, 429, "failed")
    assert 1 <= int(resp.headers["retry-after"]) <= 7
    # Both deployments now cool down as their upstreams asked: the next request is refused at once, still 429.
    again = post(s, {"model": "chat", "messages": HELLO})
    assert_error(again, 429, "cooling down")
    assert sum(s.clouds[c].stats["requests"] for c in s.clouds) == 2


@pytest.mark.parametrize("extra, fragment", [
    ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice.function"),
    ({"tools": [{"type": "function", "function": "f"}]}, "tools[0].function"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"messages": [{"role": "assistant", "tool_calls": 5}]}, "tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]}, "tool_calls[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": "x"}]}]}, "input_audio"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}]}, "image_url"),
    ({"messages": [{"role": "user", "content": ["hi"]}]}, "content[0]"),
])
def test_malformed_nested_shapes_are_400_not_a_provider_crash(stack, extra, fragment):
    body = {"model": "chat", "messages": HELLO, **extra}
    assert_error(post(stack, body), 400, fragment)
