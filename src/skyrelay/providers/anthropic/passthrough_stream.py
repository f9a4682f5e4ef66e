"""An Anthropic SSE stream passed through to an Anthropic client: forwarded as the bytes it came in, read only
as far as the gateway needs.

The gateway needs a stream's first output (to commit to the deployment), its usage and stop reason, its end and
its errors: every event up to the first output is read (PassThroughEvents), and after it only message_delta,
message_stop and error. The rest (content deltas, block starts and stops, pings) is the bulk of a stream and only
needs forwarding: it is not parsed, and what one upstream read holds of it goes on as one chunk, in the bytes it
came in. Streams with `\\r` line ends (no Anthropic API sends them) are
normalised first.
"""

from __future__ import annotations

from typing import Callable, Iterator

from ...canonical import ChatChunk
from ..sse import NormalisedFallback, SSEDecoder, parse_block
from .passthrough import PassThroughEvents

# The events read once the stream has output; the others are forwarded unread.
_READ_AFTER_OUTPUT = (b"event: message_delta\n", b"event: message_stop\n", b"event: error\n")
_READ_AFTER_OUTPUT_INSIDE = tuple(b"\n\n" + mark for mark in _READ_AFTER_OUTPUT)  # as a later block starts


class PassThroughStream(NormalisedFallback):
    """The ChunkDecoder of a passed-through Anthropic SSE stream (Anthropic's API, Claude on Vertex AI)."""

    __slots__ = ("events", "buffer", "has_output", "fallback")

    def __init__(self, deployment: str):
        self.events = PassThroughEvents(deployment)
        self.buffer = b""
        self.has_output = False  # a chunk with output went out: the stream is committed, deltas need no reading
        self.fallback: SSEDecoder | None = None  # for a stream with \r line ends

    def feed(self, data: bytes) -> Iterator[ChatChunk]:
        if self.events.done:
            return
        if self.fallback is not None or b"\r" in data:
            yield from self._feed_normalised(data)
            return
        buffer = self.buffer + data if self.buffer else data
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 2:]
        unread = b""  # forwarded deltas not yet handed on
        start = 0
        while start <= end:
            stop = buffer.find(b"\n\n", start)
            block = buffer[start:stop + 2]
            start = stop + 2
            if self.has_output and not block.startswith(_READ_AFTER_OUTPUT):
                unread += block
                continue
            event = _split(block)
            if event is None:  # comments only (a keep-alive): no event
                continue
            name, payload = event
            if unread:  # they came first: they go first
                yield self._bare(unread)
                unread = b""
            for chunk in self.events.decode(name, payload):
                if not self.has_output and chunk.has_output():
                    self.has_output = True
                yield chunk
            if self.events.done:
                return
        if unread:
            yield self._bare(unread)

    def sink(self, write: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
        """What takes the stream's bytes straight from the upstream's socket to the client (Response.pipe): whole
        events `feed` would forward unread, after the first output and with nothing held back before them, go
        to `write` (which says whether it took them); anything else is left to `feed`."""
        def take(data: bytes) -> bool:
            if not self.has_output or self.buffer or self.fallback is not None or self.events.pending:
                return False
            if self.events.done or not data.endswith(b"\n\n") or b"\r" in data or data.startswith(_READ_AFTER_OUTPUT):
                return False
            for mark in _READ_AFTER_OUTPUT_INSIDE:
                if mark in data:
                    return False
            return write(data)
        return take

    def _bare(self, raw: bytes) -> ChatChunk:
        """A chunk that only carries forwarded bytes (the stream's ids, for whoever looks)."""
        inner = self.events.inner
        return ChatChunk(id=inner.id, model=inner.model, created=inner.created, anthropic=raw)


def _split(block: bytes) -> tuple[str | None, bytes] | None:
    """(event name, data) of one `event: NAME\\ndata: JSON\\n\\n` block, read in place; other shapes by the full
    SSE rules (None for a block of comments only)."""
    if block.startswith(b"event: "):
        newline = block.find(b"\n")
        if block.startswith(b"data: ", newline + 1) and block.find(b"\n", newline + 1) == len(block) - 2:
            return block[7:newline].decode("utf-8", "replace"), block[newline + 7:-2]
    return parse_block(block.rstrip(b"\n"))
