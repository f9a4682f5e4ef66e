"""Incremental Server-Sent Events decoding for upstream streams (OpenAI, Anthropic, Gemini all speak SSE)."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Protocol

from ..canonical import ChatChunk
from .base import translating_sink


class SSEDecoder:
    """Feed raw bytes, get complete events back as (event name or None, data bytes).

    Events may be split across reads anywhere; lines end in \\n, \\r\\n or \\r; several `data:` lines of one
    event are joined with \\n, as the SSE specification says.
    """

    __slots__ = ("_buffer",)

    def __init__(self):
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            held = b""
            if buffer.endswith(b"\r"):  # maybe a \r\n cut in two by the network: decide with the next bytes
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        events = []
        start = 0
        find = buffer.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            if block.startswith(b"data: ") and b"\n" not in block:  # the usual one-line event: no splitting
                events.append((None, block[6:]))
                continue
            event = parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def finish(self) -> list[tuple[str | None, bytes]]:
        """At the end of the body: a \r held back above was a line end after all."""
        if self._buffer.endswith(b"\r"):
            return self.feed(b"\n")
        return []


def parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    """(event name, data) of one event without its blank line; None for a block of comments only."""
    name = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        # id:, retry: and comments (":" lines, used as keep-alives) carry nothing we need
    if not data and name is None:
        return None
    return name, b"\n".join(data)


class EventDecoder(Protocol):
    """Reads one cloud's stream events. `done` turns true at the event that ends the answer."""

    done: bool

    def decode(self, event: str | None, payload: bytes) -> Iterable[ChatChunk]: ...

    def finish(self) -> Iterable[ChatChunk]: ...


class NormalisedFallback:
    """What the pass-through stream decoders (OpenAI's, Anthropic's) share: a stream their byte scanner cannot take
    (`\r` line ends) is handed, from that read on, to a full SSEDecoder, and its events to `events`. The class
    using it has `events` (an EventDecoder), `buffer` (bytes not yet scanned) and `fallback` slots."""

    __slots__ = ()

    def _feed_normalised(self, data: bytes) -> Iterator[ChatChunk]:
        if self.fallback is None:
            self.fallback, data = SSEDecoder(), self.buffer + data
            self.buffer = b""
        for name, payload in self.fallback.feed(data):
            yield from self.events.decode(name, payload)
            if self.events.done:
                return

    def finish(self) -> list[ChatChunk]:
        chunks: list[ChatChunk] = []
        if self.fallback is not None and not self.events.done:
            for name, payload in self.fallback.finish():
                chunks += self.events.decode(name, payload)
        return chunks + list(self.events.finish())


class SSEChunks:
    """The chunks of an SSE body: raw bytes are split into events, which an event decoder reads.

    Once the decoder is done (OpenAI's `[DONE]`, Anthropic's message_stop) the rest of the body is still read but
    no longer decoded: reading a body to its end is what returns its connection to the pool."""

    __slots__ = ("events", "decoder")

    def __init__(self, decoder: EventDecoder):
        self.events = SSEDecoder()
        self.decoder = decoder

    def feed(self, data: bytes) -> Iterator[ChatChunk]:
        decoder = self.decoder
        if decoder.done:
            return
        for name, payload in self.events.feed(data):
            yield from decoder.decode(name, payload)
            if decoder.done:
                return

    def translated(self, write: Callable[[bytes], bool], render: Callable[[ChatChunk], bytes]
                   ) -> Callable[[bytes], bool] | None:
        """The pipe's sink for an event decoder with a `plain` reading (base.translating_sink): reads of whole
        events, nothing of an earlier one held, before the end."""
        read = getattr(self.decoder, "plain", None)
        if read is None:
            return None
        events, decoder = self.events, self.decoder

        def plain(data: bytes) -> list[ChatChunk] | None:
            if events._buffer or decoder.done or not data.endswith(b"\n\n") or b"\r" in data:
                return None
            return read(data)
        return translating_sink(plain, write, render)

    def finish(self) -> Iterable[ChatChunk]:
        decoder = self.decoder
        for name, payload in self.events.finish():
            if decoder.done:
                break
            yield from decoder.decode(name, payload)
        yield from decoder.finish()
