"""Gemini's thought summaries in the provider: asked for only when the client wants a summary, read back as the
canonical reasoning (never as answer text), counted as reasoning tokens."""

from __future__ import annotations

import orjson
import pytest

from skyrelay.canonical import ChatRequest
from skyrelay.providers.gemini.request import build_request
from skyrelay.providers.gemini.response import parse_response
from skyrelay.providers.gemini.stream import StreamDecoder

HI = [{"role": "user", "content": "hi"}]
THOUGHT = {"text": "Weighing it up.", "thought": True}
ANSWER = {"text": "Hello."}
USAGE = {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 7, "totalTokenCount": 12}


def config(model="gemini-2.5-flash", **kw) -> dict:
    return build_request(ChatRequest(model="g", messages=HI, **kw), "g", "gemini", model).get("generationConfig", {})


@pytest.mark.parametrize("kw, expected", [
    ({}, None),
    ({"show_thoughts": True}, {"includeThoughts": True}),
    ({"extra": {"reasoning_effort": "low"}}, {"thinkingBudget": 1024}),
    ({"extra": {"reasoning_effort": "low"}, "show_thoughts": True}, {"thinkingBudget": 1024, "includeThoughts": True}),
    ({"extra": {"reasoning_effort": "none"}, "show_thoughts": True}, {"thinkingBudget": 0}),
])
def test_thoughts_are_asked_for_only_with_a_summary_and_thinking_on(kw, expected):
    assert config(**kw).get("thinkingConfig") == expected


def test_gemini_3_levels_take_include_thoughts_too():
    got = config("gemini-3-pro-preview", extra={"reasoning_effort": "high"}, show_thoughts=True)["thinkingConfig"]
    assert got == {"thinkingLevel": "HIGH", "includeThoughts": True}


def test_whole_answer_keeps_the_thoughts_apart_from_the_text():
    resp = parse_response({"candidates": [{"content": {"parts": [THOUGHT, ANSWER]}, "finishReason": "STOP"}],
                           "usageMetadata": USAGE}, "g", "m")
    choice = resp.choices[0]
    assert choice.content == "Hello."
    assert choice.thinking_blocks == [{"type": "thought", "thinking": "Weighing it up."}]
    assert resp.usage.output_tokens == 9 and resp.usage.reasoning_tokens == 7


def test_stream_sends_thoughts_as_reasoning_chunks():
    decoder = StreamDecoder("g", "m")
    first = decoder.decode(None, orjson.dumps({"candidates": [{"content": {"parts": [THOUGHT]}}]}))
    last = decoder.decode(None, orjson.dumps({"candidates": [{"content": {"parts": [ANSWER]}, "finishReason": "STOP"}],
                                              "usageMetadata": USAGE}))
    assert [c.reasoning for c in first if c.reasoning] == ["Weighing it up."]
    assert not any(c.content for c in first)
    assert [c.content for c in last if c.content] == ["Hello."]
    assert decoder.finish()[0].usage.reasoning_tokens == 7
