"""Incremental Server-Sent Events decoding for upstream streams (OpenAI, Anthropic, Gemini all speak SSE)."""

from __future__ import annotations

from typing import AsyncIterator


class SSEDecoder:
    """Feed raw bytes, get complete events back as (event name or None, data bytes).

    Events may be split across reads anywhere; lines end in \\n, \\r\\n or \\r; several `data:` lines of one
    event are joined with \\n, as the SSE specification says.
    """

    __slots__ = ("_buffer",)

    def __init__(self):
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        buffer = self._buffer + data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            block, buffer = buffer[:end], buffer[end + 2:]
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer
        return events


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
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


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
