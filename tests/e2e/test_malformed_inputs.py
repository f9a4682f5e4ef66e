"""Bad input gets a clear error, never a crash: valid requests, mutated at random places into wrong types,
missing fields and odd values, sent through both inbound protocols to a group spread over every provider kind.
No answer may be a 5xx, and every error must be in the route's own error format. Seeded, so reproducible."""

from __future__ import annotations

import copy
import random

import httpx2 as httpx
import pytest

from tests.support.openai_schema import validate

from . import test_multicloud as multicloud
from .harness import start_stack

ODD_VALUES = [None, 0, -1, 1.5, "", "x", True, [], [1], {}, {"a": 1}, [{}], {"type": "x"}, ["a", {"b": []}],
              "data:image/png;base64,@@", 10**30, "https://example.invalid/cat.png"]
PNG = multicloud.PNG
TOOL_PARAMETERS = multicloud.WEATHER["function"]["parameters"]

OPENAI_REQUEST = {
    "model": "chat", "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n"], "tool_choice": "auto",
    "response_format": {"type": "text"}, "tools": [multicloud.WEATHER],
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "x"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "and tomorrow?"},
    ],
}
ANTHROPIC_REQUEST = {
    "model": "chat", "max_tokens": 20, "temperature": 0.5, "stop_sequences": ["\n\n"], "metadata": {"user_id": "u"},
    "system": [{"type": "text", "text": "be brief"}], "tool_choice": {"type": "auto"},
    "tools": [{"name": "get_weather", "description": "weather", "input_schema": TOOL_PARAMETERS}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": PNG}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                                     {"type": "text", "text": "tomorrow?"}]},
    ],
}


def paths(value, prefix=()):
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


def mutated(request: dict, rng: random.Random) -> dict:
    body = copy.deepcopy(request)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(paths(body)))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice(ODD_VALUES)
    if rng.random() < 0.3:
        body["stream"] = True
    return body


@pytest.fixture(scope="module")
def multi(bg):
    stack = start_stack(bg, multicloud.CLOUDS, multicloud.groups)
    yield stack
    stack.close()


def test_openai_route_never_crashes(multi):
    rng = random.Random(20261128)
    for _ in range(200):
        body = mutated(OPENAI_REQUEST, rng)
        resp = httpx.post(f"{multi.base_url}/chat/completions", json=body, timeout=10,
                          headers={"authorization": f"Bearer {multi.key}"})
        assert resp.status_code < 500, (body, resp.text)
        if resp.status_code >= 400:
            validate("ErrorResponse", resp.json())


def test_anthropic_route_never_crashes(multi):
    rng = random.Random(11282026)
    for _ in range(200):
        body = mutated(ANTHROPIC_REQUEST, rng)
        resp = httpx.post(f"{multi.origin}/v1/messages", json=body, timeout=10, headers={"x-api-key": multi.key})
        assert resp.status_code < 500, (body, resp.text)
        if resp.status_code >= 400:
            error = resp.json()
            assert error["type"] == "error" and isinstance(error["error"]["message"], str), resp.text
