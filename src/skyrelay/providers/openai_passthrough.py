"""An OpenAI chat-completions stream passed through to an OpenAI client: forwarded as the bytes it came in, read
only as far as the gateway needs.

The gateway needs a stream's first output (to commit to the deployment), its usage, whether it finished (a
finish_reason makes an answer whole without [DONE]), its end and its errors. Every event up to the first output
is read (the provider's ChunkEvents, Azure's included); after it, only the events that can hold one of those facts.
Which ones those are is told by byte searches, and they are sound: a quote inside a JSON string is escaped, so a
quoted key such as `"usage"` only ever matches a real key, never content or tool arguments that mention it; and the
`"usage":null` and `"finish_reason":null` every chunk repeats are told apart by counting. A false alarm (a server
that writes `"finish_reason": null` with a space, usage on every chunk) only costs a parse. The rest is forwarded
unread: what one upstream read holds of it goes on as one chunk. Streams with `\\r` line ends are normalised first.
A malformed event after the first output reaches the client as it came (the client's SDK raises on it).
"""

from __future__ import annotations

from typing import Callable, Iterator

from ..canonical import ChatChunk
from .sse import EventDecoder, NormalisedFallback, SSEDecoder, parse_block

# Where the first event to read usually is: an error, the end, a choice-less chunk of Azure's (empty id), and the
# keys read unless null, as they are spelled when not null.
_FIRST_READ = (b'"error"', b"[DONE]", b'"id":""', b'"finish_reason":"', b'"usage":{')


def forwards_unread(events: bytes) -> bool:
    """Whether none of these whole SSE events can carry anything the gateway reads after the first output: an
    error, the end, Azure's empty-id chunk, a usage or finish_reason other than null (however spelled)."""
    return (b'"error"' not in events and b"[DONE]" not in events and b'"id":""' not in events
            and events.count(b'"finish_reason"') == events.count(b'"finish_reason":null')
            and events.count(b'"usage"') == events.count(b'"usage":null'))


class PassThroughChunks(NormalisedFallback):
    """The ChunkDecoder of a passed-through OpenAI (or Azure) chat-completions stream."""

    __slots__ = ("events", "buffer", "last", "fallback", "shape")

    def __init__(self, events: EventDecoder):
        self.events = events
        self.buffer = b""
        self.last: ChatChunk | None = None  # the first output chunk: once there, events may go on unread
        self.fallback: SSEDecoder | None = None  # for a stream with \r line ends
        # The first output event's bytes around its content string: an event of that shape whose content holds no
        # quote is the same JSON with other text, so it goes on unread without the searches (_shaped).
        self.shape: tuple[bytes, bytes] | None = None

    def feed(self, data: bytes) -> Iterator[ChatChunk]:
        if self.events.done:
            return
        if self.fallback is not None or b"\r" in data:
            yield from self._feed_normalised(data)
            return
        buffer = self.buffer + data if self.buffer else data
        end = buffer.rfind(b"\n\n") + 2
        if end < 2:
            self.buffer = buffer
            return
        self.buffer = buffer[end:]
        whole = buffer[:end] if self.buffer else buffer
        while whole:
            if self.last is not None:  # committed: what comes before the next event to read goes on in one piece
                cut = len(whole) if self._shaped(whole) else _unread_length(whole)
                if cut == len(whole):
                    yield self._bare(whole)
                    return
                if cut:
                    yield self._bare(whole[:cut])
                    whole = whole[cut:]
            stop = whole.find(b"\n\n") + 2
            yield from self._read(whole[:stop])
            if self.events.done:
                return
            whole = whole[stop:]

    def sink(self, write: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
        """What takes the stream's bytes straight from the upstream's socket to the client (Response.pipe): the
        events `feed` would forward unread, when they arrive whole after the first output, go to `write` (which
        says whether it took them: not while the client's socket is full); anything else is left to `feed`."""
        def take(data: bytes) -> bool:
            if self.last is None or self.buffer or self.fallback is not None or self.events.done:
                return False
            if not data.endswith(b"\n\n") or b"\r" in data or (
                    not self._shaped(data) and _unread_length(data) != len(data)):
                return False
            return write(data)
        return take

    def _read(self, block: bytes) -> Iterator[ChatChunk]:
        event = _split(block)
        if event is not None:
            for chunk in self.events.decode(*event):
                if self.last is None and chunk.has_output():
                    self.last = chunk
                    self.shape = _shape_of(block, chunk)
                yield chunk

    def _shaped(self, events: bytes) -> bool:
        """One event of the first output event's shape: its prefix, a content string without a quote (so no
        escaped one either, and nothing the gateway reads) or a line end, its suffix."""
        shape = self.shape
        if shape is None:
            return False
        prefix, suffix = shape
        if not events.startswith(prefix) or not events.endswith(suffix) or len(events) < len(prefix) + len(suffix):
            return False
        content = events[len(prefix):len(events) - len(suffix)]
        return b'"' not in content and b"\n" not in content  # one event: no line end inside it

    def _bare(self, raw: bytes) -> ChatChunk:
        """A chunk that only carries forwarded events (the stream's ids, for whoever looks)."""
        last = self.last
        return ChatChunk(id=last.id, model=last.model, created=last.created, sse=raw)


def _shape_of(block: bytes, chunk: ChatChunk) -> tuple[bytes, bytes] | None:
    """(prefix, suffix) around the content string of a one-line event that holds a content delta and nothing the
    gateway reads (no finish_reason, usage or tool call), its content written without escapes; else None."""
    content = chunk.content
    if chunk.finish_reason is not None or chunk.usage is not None or chunk.tool_calls or not content \
            or not block.startswith(b"data: ") or block.find(b"\n") != len(block) - 2:
        return None
    start = block.find(_CONTENT)
    if start < 0 or block.find(_CONTENT, start + 1) >= 0:
        return None
    start += len(_CONTENT)
    end = start + len(text := content.encode())
    if block[start:end] != text or block[end:end + 1] != b'"' or b'"' in text or b"\\" in text:
        return None
    return block[:start], block[end:]


_CONTENT = b'"content":"'


def _unread_length(events: bytes) -> int:
    """How many leading bytes of these whole events go on unread, once the stream has output."""
    if events.find(b"\n\n") + 2 == len(events):  # one event (a trickled stream): no need to search
        return len(events) if forwards_unread(events) else 0
    cut = _first_to_read(events)
    # The search can miss odd spellings; the counts in forwards_unread cannot.
    if cut and forwards_unread(events[:cut] if cut < len(events) else events):
        return cut
    return 0


def _first_to_read(events: bytes) -> int:
    """Where the event that (by the usual spellings) holds the first thing to read starts; the end when none."""
    first = len(events)
    for mark in _FIRST_READ:
        at = events.find(mark, 0, first)
        if at >= 0:
            first = at
    if first == len(events):
        return first
    end = events.rfind(b"\n\n", 0, first)
    return end + 2 if end >= 0 else 0


def _split(block: bytes) -> tuple[str | None, bytes] | None:
    """(event name, data) of one event with its blank line: the usual `data: JSON` without splitting lines."""
    if block.startswith(b"data: ") and block.find(b"\n") == len(block) - 2:
        return None, block[6:-2]
    return parse_block(block[:-2])
