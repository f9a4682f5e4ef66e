"""The Anthropic pass-through: the client's body with only the model swapped, its headers forwarded, the cloud's
events kept byte for byte while the gateway reads usage (cache reads and writes apart) and output from them."""

from __future__ import annotations

import orjson
import pytest

from skyrelay.canonical import AnthropicNative, Choice, Usage
from skyrelay.providers.anthropic.passthrough import PassThroughEvents, native_body, native_headers, whole_message
from skyrelay.providers.sse import SSEChunks

THINKING_STREAM = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-5", "content": [],
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 2000,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "Let me see."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": "c2ln"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text",
                                                                                          "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Done."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 30}}),
    ("message_stop", {"type": "message_stop"}),
]


def sse(events) -> bytes:
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events)


def test_stream_events_pass_byte_for_byte_and_usage_is_read():
    body = sse(THINKING_STREAM)
    chunks = SSEChunks(PassThroughEvents("claude-a"))
    out = [c for i in range(0, len(body), 37) for c in chunks.feed(body[i:i + 37])]  # cut anywhere
    out += list(chunks.finish())
    assert b"".join(c.anthropic for c in out) == body
    assert out[1].reasoning == "Let me see."  # thinking is output: a stream commits to it
    assert out[-1].usage == Usage(input_tokens=3510, output_tokens=30, cached_tokens=2000, cache_write_tokens=1500)


def test_whole_message_is_forwarded_and_its_usage_read():
    data = {"id": "msg_1", "type": "message", "content": [], "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "cache_creation_input_tokens": 7, "output_tokens": 2}}
    raw = orjson.dumps(data)
    resp = whole_message(raw, data, "claude-a")
    assert resp.anthropic is raw and resp.usage == Usage(12, 2, 0, 7)


@pytest.mark.parametrize("stop_reason, finish", [("end_turn", "stop"), ("max_tokens", "length"),
                                                 ("tool_use", "tool_calls"), (None, "stop")])
def test_a_whole_message_reads_the_rest_only_when_asked(stop_reason, finish):
    data = {"id": "msg_2", "model": "claude-x", "content": [], "stop_reason": stop_reason,
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 1}}
    resp = whole_message(orjson.dumps(data), data, "claude-a")
    assert resp.usage == Usage(input_tokens=7, output_tokens=1, cached_tokens=4, cache_write_tokens=0)
    assert (resp.id, resp.model, resp.choices) == ("msg_2", "claude-x", [Choice(finish_reason=finish)])
    assert resp.created > 0 and resp.created == resp.created  # read once, then kept
    assert resp.raw is None and resp.raw_body is None and resp.responses is None and resp.responses_data is None
    resp.id, resp.choices = "set", []  # fields stay writable
    assert (resp.id, resp.choices) == ("set", [])


def test_a_message_that_is_not_an_object_is_still_forwarded():
    resp = whole_message(b"[]", [], "claude-a")
    assert resp.anthropic == b"[]" and resp.usage == Usage() and resp.choices == [] and resp.id == ""


def test_only_the_model_is_swapped_and_the_client_headers_go_along():
    native = AnthropicNative({"model": "claude", "max_tokens": 5, "stream": True, "context_management": {}},
                             beta="a,b", version="2023-06-01")
    assert native_body(native, "claude-opus-4-5", False) == {"model": "claude-opus-4-5", "max_tokens": 5,
                                                             "context_management": {}}
    assert native.body["model"] == "claude"  # the client's own body is left for a retry elsewhere
    headers = native_headers([("x-api-key", "k"), ("anthropic-version", "2024-01-01")], native)
    assert headers == [("x-api-key", "k"), ("anthropic-version", "2023-06-01"), ("anthropic-beta", "a,b")]


# --- PassThroughStream: what the anthropic and vertex_anthropic kinds decode streams with ---------------------------

from skyrelay import errors  # noqa: E402
from skyrelay.providers.anthropic.passthrough_stream import PassThroughStream  # noqa: E402


@pytest.mark.parametrize("step", [1, 7, 37, 10_000])
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_the_stream_passes_byte_for_byte_however_it_is_cut(step, line_end):
    body = sse(THINKING_STREAM).replace(b"\n", line_end)
    decoder = PassThroughStream("claude-a")
    out = [c for i in range(0, len(body), step) for c in decoder.feed(body[i:i + step])]
    out += decoder.finish()
    forwarded = b"".join(c.anthropic for c in out)
    assert forwarded == (body if line_end == b"\n" else sse(THINKING_STREAM))  # \r\n: normalised
    assert next(c for c in out if c.reasoning).reasoning == "Let me see."  # read up to the first output
    assert [c.finish_reason for c in out if c.finish_reason] == ["stop"]
    assert out[-1].usage == Usage(input_tokens=3510, output_tokens=30, cached_tokens=2000, cache_write_tokens=1500)


def test_after_the_first_output_deltas_go_on_unread_one_chunk_per_read():
    events = THINKING_STREAM[:4] + [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                             "delta": {"type": "thinking_delta", "thinking": "x"}})
                                    ] * 5 + THINKING_STREAM[4:]
    body = sse(events)
    head = sse(events[:4])
    decoder = PassThroughStream("claude-a")
    first = list(decoder.feed(head))
    rest = list(decoder.feed(body[len(head):])) + decoder.finish()
    assert first[-1].reasoning == "Let me see."
    assert not any(c.reasoning for c in rest)  # not parsed
    assert b"".join(c.anthropic for c in first + rest) == body
    assert rest[-1].usage.output_tokens == 30


def test_an_error_event_after_output_raises_after_what_came_before():
    error = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    body = sse(THINKING_STREAM[:5] + [error])
    decoder = PassThroughStream("claude-a")
    out = []
    with pytest.raises(errors.UpstreamUnavailable, match="Overloaded"):
        for chunk in decoder.feed(body):
            out.append(chunk)
    assert b"".join(c.anthropic for c in out) == sse(THINKING_STREAM[:5])


def test_a_stream_cut_before_message_stop_is_an_error():
    decoder = PassThroughStream("claude-a")
    list(decoder.feed(sse(THINKING_STREAM[:-1])))
    with pytest.raises(errors.UpstreamUnavailable, match="before message_stop"):
        decoder.finish()


def test_sse_comments_before_and_after_the_first_output_are_not_events():
    """A proxy on the way may send `: keep-alive` comments: they are no event (before the first output they are
    read and dropped; after it they go on unread, as the bytes they are) and never fail the stream."""
    comment = b": keep-alive\n\n"
    body = comment + sse(THINKING_STREAM[:2]) + comment + sse(THINKING_STREAM[2:6]) + comment + sse(THINKING_STREAM[6:])
    decoder = PassThroughStream("claude-a")
    out = list(decoder.feed(body)) + decoder.finish()
    forwarded = b"".join(c.anthropic for c in out)
    assert forwarded.replace(comment, b"") == sse(THINKING_STREAM)
    assert out[-1].usage.output_tokens == 30
