"""Another cloud's thoughts on the Anthropic route: rendered as thinking blocks (whole, and streamed in the order
of Anthropic's streaming reference) with the gateway's signatures, read back from the history beside the canonical
messages, and left out of the body an Anthropic-family cloud gets. Event shapes follow Anthropic's streaming
reference (content_block_start with empty thinking and signature, thinking_delta, signature_delta)."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import seals
from skyrelay.canonical import ChatChunk, ChatResponse, Choice, ToolCallDelta, Usage
from skyrelay.protocols import anthropic as protocol
from skyrelay.providers.anthropic.passthrough import count_body, native_body

CONVERSE = seals.seal({"f": "converse", "m": "openai.gpt-oss-120b-1:0", "s": "c2ln"})


def body(messages: list, **fields) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 1024, "messages": messages, **fields})


def answer(*blocks) -> ChatResponse:
    return ChatResponse(id="x", model="m", created=1, usage=Usage(5, 7),
                        choices=[Choice(content="Hello.", thinking_blocks=list(blocks) or None)])


def chunk(**fields) -> ChatChunk:
    return ChatChunk(id="x", model="m", created=1, **fields)


def events(data: bytes) -> list[dict]:
    return [orjson.loads(part.split(b"\ndata: ", 1)[1]) for part in data.split(b"\n\n") if part]


def stream(chunks: list[ChatChunk], thinking: bool = True) -> list[dict]:
    renderer = (protocol.ThinkingStreamRenderer if thinking else protocol.StreamRenderer)("m")
    return events(b"".join(renderer.feed(c) for c in chunks) + renderer.close())


def shape(evs: list[dict]) -> list[tuple]:
    """(type, index, delta or block type) of each block event."""
    out = []
    for e in evs:
        if e["type"] == "content_block_start":
            out.append(("start", e["index"], e["content_block"]["type"]))
        elif e["type"] == "content_block_delta":
            out.append(("delta", e["index"], e["delta"]["type"]))
        elif e["type"] == "content_block_stop":
            out.append(("stop", e["index"]))
    return out


# --- whole answers --------------------------------------------------------------------------------------------------


def test_thoughts_open_the_message_when_thinking_was_asked():
    message = orjson.loads(protocol.render_message(answer(
        {"type": "thought", "thinking": "Gemini thinks."},
        {"type": "thought", "thinking": "Converse thinks.", "signature": CONVERSE}), "m", True))
    assert message["content"] == [
        {"type": "thinking", "thinking": "Gemini thinks.", "signature": seals.THOUGHT},
        {"type": "thinking", "thinking": "Converse thinks.", "signature": CONVERSE},
        {"type": "text", "text": "Hello."}]


def test_no_thinking_asked_no_thinking_block():
    message = orjson.loads(protocol.render_message(answer({"type": "thought", "thinking": "Hmm."}), "m"))
    assert message["content"] == [{"type": "text", "text": "Hello."}]


def test_the_gateways_unsigned_seal_is_a_seal_no_cloud_takes_back():
    assert seals.unseal(seals.THOUGHT) == {"f": "thought"}


# --- streams --------------------------------------------------------------------------------------------------------


def test_unsigned_thoughts_stream_as_a_thinking_block_closed_by_the_gateways_signature():
    evs = stream([chunk(role="assistant", content=""), chunk(reasoning="Let me "), chunk(reasoning="see."),
                  chunk(content="Hello."), chunk(finish_reason="stop"), chunk(usage=Usage(5, 7))])
    assert shape(evs) == [("start", 0, "thinking"), ("delta", 0, "thinking_delta"), ("delta", 0, "thinking_delta"),
                          ("delta", 0, "signature_delta"), ("stop", 0),
                          ("start", 1, "text"), ("delta", 1, "text_delta"), ("stop", 1)]
    start = next(e for e in evs if e["type"] == "content_block_start")
    assert start["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    signature = next(e["delta"] for e in evs if e.get("delta", {}).get("type") == "signature_delta")
    assert signature == {"type": "signature_delta", "signature": seals.THOUGHT}
    assert evs[0]["type"] == "message_start" and evs[-1]["type"] == "message_stop"


def test_a_signed_thought_ends_with_its_own_signature_once():
    evs = stream([chunk(reasoning="Hmm."), chunk(thinking_block={"type": "thought", "thinking": "",
                                                                 "signature": CONVERSE}),
                  chunk(tool_calls=[ToolCallDelta(index=0, id="t1", name="f", arguments="{}")]),
                  chunk(finish_reason="tool_calls")])
    assert shape(evs) == [("start", 0, "thinking"), ("delta", 0, "thinking_delta"), ("delta", 0, "signature_delta"),
                          ("stop", 0), ("start", 1, "tool_use"), ("delta", 1, "input_json_delta"), ("stop", 1)]
    assert [e["delta"]["signature"] for e in evs if e.get("delta", {}).get("type") == "signature_delta"] == [
        CONVERSE]


def test_a_finished_block_not_streamed_before_shows_its_text_and_redacted_thinking_is_whole():
    evs = stream([chunk(thinking_block={"type": "thinking", "thinking": "All at once.", "signature": "s"}),
                  chunk(thinking_block={"type": "redacted_thinking", "data": "opaque"}), chunk(content="Hi")])
    assert shape(evs) == [("start", 0, "thinking"), ("delta", 0, "thinking_delta"), ("delta", 0, "signature_delta"),
                          ("stop", 0), ("start", 1, "redacted_thinking"), ("stop", 1), ("start", 2, "text"),
                          ("delta", 2, "text_delta"), ("stop", 2)]
    assert evs[2]["delta"] == {"type": "thinking_delta", "thinking": "All at once."}
    assert evs[5]["content_block"] == {"type": "redacted_thinking", "data": "opaque"}


def test_a_stream_that_ends_while_thinking_still_signs_the_block():
    assert shape(stream([chunk(reasoning="Hmm.")])) == [
        ("start", 0, "thinking"), ("delta", 0, "thinking_delta"), ("delta", 0, "signature_delta"), ("stop", 0)]


def test_the_plain_renderer_shows_no_thoughts():
    assert shape(stream([chunk(reasoning="Hmm."), chunk(content="Hi")], thinking=False)) == [
        ("start", 0, "text"), ("delta", 0, "text_delta"), ("stop", 0)]


# --- the history ----------------------------------------------------------------------------------------------------

HISTORY = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "Converse thought.", "signature": CONVERSE},
                                      {"type": "text", "text": "Hello!"}]},
    {"role": "user", "content": "Again"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "Claude's.", "signature": "c2ln"},
                                      {"type": "redacted_thinking", "data": "opaque"},
                                      {"type": "thinking", "thinking": "Gemini's.", "signature": seals.THOUGHT},
                                      {"type": "text", "text": "Hi again."}]},
    {"role": "user", "content": "Once more"}]


def test_history_thinking_goes_beside_the_messages():
    req = protocol.parse_messages(body(HISTORY, thinking=THINKING))
    assert [m["content"] for m in req.messages] == ["Hi", "Hello!", "Again", "Hi again.", "Once more"]
    assert req.thinking == {
        1: [{"type": "thought", "thinking": "Converse thought.", "signature": CONVERSE}],
        3: [{"type": "thinking", "thinking": "Claude's.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thought", "thinking": "Gemini's.", "signature": seals.THOUGHT}]}
    assert req.show_thoughts is True and req.anthropic.sealed is True


@pytest.mark.parametrize("thinking, shown", [({"type": "adaptive"}, True), ({"type": "disabled"}, False), (None, False)])
def test_thoughts_are_shown_under_enabled_and_adaptive_thinking(thinking, shown):
    req = protocol.parse_messages(body([{"role": "user", "content": "Hi"}], thinking=thinking))
    assert req.show_thoughts is shown


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "sky1. is only text here"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "the seal \"sky1.abc\" quoted"},
     {"role": "user", "content": "ok"}],
    HISTORY[:1] + [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "c2ln"},
                                                      {"type": "text", "text": "x"}]}, HISTORY[2]],
])
def test_only_a_gateway_signed_thinking_block_marks_the_history_sealed(messages):
    assert protocol.read_messages(body(messages, thinking=THINKING)).anthropic.sealed is False


def test_without_thinking_the_history_is_not_walked():
    """Gateway-signed blocks come from answers to thinking requests and go back with thinking on: a request
    without `thinking` (the common path) pays no walk of its history."""
    assert protocol.read_messages(body(HISTORY)).anthropic.sealed is False


THINKING = {"type": "enabled", "budget_tokens": 2048}


def test_an_anthropic_family_cloud_gets_the_history_without_the_gateways_blocks():
    native = protocol.read_messages(body(HISTORY, thinking=THINKING)).anthropic
    for built in (native_body(native, "claude-x", False), count_body(native, "claude-x")):
        assert built["messages"][1]["content"] == [{"type": "text", "text": "Hello!"}]
        assert built["messages"][3]["content"] == [HISTORY[3]["content"][i] for i in (0, 1, 3)]
    assert native.body["messages"] == HISTORY  # the client's own body, for another attempt elsewhere


def test_a_malformed_history_is_walked_without_failing():
    messages = [1, "x", {"role": "assistant", "content": [1, None, {"type": "thinking", "signature": 5}]},
                {"role": "assistant", "content": "text"}, {"role": "user", "content": "Hi"}]
    assert protocol.read_messages(body(messages, thinking=THINKING)).anthropic.sealed is False
