"""SSE decoding: events split anywhere across reads, every line ending, multi-line data, comments."""

from __future__ import annotations

import pytest

from skyrelay.providers.sse import SSEDecoder

STREAM = (b'data: {"a":1}\n\n'
          b"event: message_start\ndata: {\"b\":2}\n\n"
          b": keep-alive comment\n\n"
          b"data: line one\ndata: line two\n\n"
          b"id: 7\nretry: 100\ndata: [DONE]\n\n")
EXPECTED = [(None, b'{"a":1}'), ("message_start", b'{"b":2}'), (None, b"line one\nline two"), (None, b"[DONE]")]


def decode_in_pieces(stream: bytes, size: int) -> list:
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(stream), size):
        events += decoder.feed(stream[i:i + size])
    return events + decoder.finish()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_events_survive_any_split_and_any_line_ending(newline, size):
    stream = STREAM.replace(b"\n", newline)
    assert decode_in_pieces(stream, size) == EXPECTED


def test_an_incomplete_event_waits_for_its_end():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a"') == []
    assert decoder.feed(b':1}\n') == []
    assert decoder.feed(b"\n") == [(None, b'{"a":1}')]
