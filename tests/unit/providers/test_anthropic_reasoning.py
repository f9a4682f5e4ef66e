"""Reasoning through the canonical core to Anthropic: reasoning_effort as a thinking budget that fits under the
cap, thinking blocks of earlier turns opening their assistant turn, and the answer's thinking read whole and
streamed (fragments, then the finished block with its signature)."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest
from skyrelay.protocols.responses.reasoning import seal, unseal
from skyrelay.providers.anthropic.request import build_request
from skyrelay.providers.anthropic.response import parse_message
from skyrelay.providers.anthropic.stream import StreamDecoder

HI = [{"role": "user", "content": "hi"}]
THOUGHT = {"type": "thinking", "thinking": "Let me see.", "signature": "c2ln"}


def body(**kw):
    return build_request(ChatRequest(model="m", messages=kw.pop("messages", HI), **kw), "d", "claude")[0]


@pytest.mark.parametrize("effort, cap, budget, max_tokens", [
    ("low", None, 1024, 4096 + 1024), ("medium", None, 4096, 4096 + 4096), ("high", 32000, 16384, 32000),
    ("high", 2000, 1999, 2000), ("minimal", 5000, 1024, 5000)])
def test_effort_becomes_a_budget_under_the_cap(effort, cap, budget, max_tokens):
    sent = body(max_tokens=cap, extra={"reasoning_effort": effort})
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget} and sent["max_tokens"] == max_tokens


def test_no_effort_asks_for_no_thinking_and_a_cap_too_small_is_refused():
    assert "thinking" not in body(extra={"reasoning_effort": "none"})
    assert body(extra={"reasoning_effort": "low", "thinking": {"type": "disabled"}})["thinking"] == {
        "type": "disabled"}  # Anthropic's own field wins
    with pytest.raises(errors.UnsupportedFeature) as refused:
        body(max_tokens=1000, extra={"reasoning_effort": "low"})
    assert refused.value.param == "max_tokens"
    with pytest.raises(errors.UnsupportedFeature):
        body(extra={"reasoning_effort": "extreme"})


def test_thinking_blocks_open_their_assistant_turn():
    messages = [*HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]
    sent = body(messages=messages, thinking={1: [THOUGHT]})
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["thinking", "tool_use"]
    assert sent["messages"][1]["content"][0] == THOUGHT


def test_another_clouds_thoughts_stay_out_of_the_turn():
    """A canonical thought (Converse's, handed back on the Responses route) is not Anthropic's to verify."""
    converse = {"type": "thought", "thinking": "Hmm.", "signature": "sky1.e30="}
    messages = [*HI, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "again"}]
    sent = body(messages=messages, thinking={1: [converse, THOUGHT]})
    assert sent["messages"][1]["content"] == [THOUGHT, {"type": "text", "text": "Hello"}]


def test_the_answers_thinking_is_read_whole():
    data = {"id": "msg_1", "model": "claude", "stop_reason": "end_turn", "usage": {}, "content": [
        {**THOUGHT}, {"type": "redacted_thinking", "data": "b3BhcXVl"}, {"type": "text", "text": "Hello"}]}
    choice = parse_message(data, "d").choices[0]
    assert choice.content == "Hello"
    assert choice.thinking_blocks == [THOUGHT, {"type": "redacted_thinking", "data": "b3BhcXVl"}]


def test_a_streamed_thought_comes_in_fragments_then_whole_with_its_signature():
    decoder = StreamDecoder("d", reasoning=True)
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                     "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": " see."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 1},
    ]
    chunks = [c for e in events for c in decoder.decode(e["type"], orjson.dumps(e))]
    assert [c.reasoning for c in chunks if c.reasoning] == ["Let me", " see."]
    assert [c.thinking_block for c in chunks if c.thinking_block] == [THOUGHT]
    assert [c.content for c in chunks if c.content] == ["Hello"]


def test_a_seal_opens_to_its_blocks_and_nothing_else_opens():
    assert unseal(seal([THOUGHT])) == [THOUGHT]
    for foreign in ("gAAAAABo-openai", "sky1.not-base64!", seal([{"type": "thinking"}]), None, 3):
        assert unseal(foreign) is None
