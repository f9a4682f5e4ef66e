"""Canonical chunk streams -> Anthropic's event stream.

Anthropic frames an answer as content blocks, one open at a time: message_start, then per block
content_block_start / content_block_delta... / content_block_stop, then message_delta (stop_reason, usage) and
message_stop. Canonical chunks carry no block boundaries, so the renderer opens a block when the kind of delta
changes (text, or a new tool call index) and closes it when the next starts or the answer finishes. Usage comes
in its own chunk after the finish chunk, so message_delta waits for it (or for the end of the stream).
ThinkingStreamRenderer, for a client that asked for thinking, also shows the cloud's thoughts as thinking blocks,
in the order of Anthropic's streaming reference: content_block_start {thinking: "", signature: ""}, thinking_delta
events, a signature_delta, content_block_stop, then the next block at the next index.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from ...canonical import ChatChunk, ToolCallDelta, Usage
from ...seals import THOUGHT
from .response import message_id, render_usage, stop_reason, thinking_block

_TEXT = -1  # `open_kind` of a text block; tool blocks use the tool call's index
_THINKING = -2  # `open_kind` of a thinking block


def event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class StreamRenderer:
    """Feed it canonical chunks in order; it returns the SSE bytes to send for each (often b"")."""

    __slots__ = ("model", "started", "block_count", "open_kind", "tool_blocks", "finish_reason", "usage", "done")

    def __init__(self, model: str):
        self.model = model  # the name the client asked for
        self.started = False
        self.block_count = 0  # blocks opened so far: the next block's index
        self.open_kind: int | None = None  # None: no block open; _TEXT; or the open tool call's index
        self.tool_blocks: dict[int, int] = {}  # tool call index -> block index
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: ChatChunk) -> bytes:
        if self.done or chunk.index != 0:  # only one choice is ever requested
            return b""
        out: list[bytes] = []
        if not self.started:
            out.append(self._message_start(chunk.id))
        if chunk.content:
            if self.open_kind != _TEXT:
                self._close_block(out)
                out.append(self._open_block(_TEXT, {"type": "text", "text": ""}))
            out.append(event(b"content_block_delta", {
                "type": "content_block_delta", "index": self.block_count - 1,
                "delta": {"type": "text_delta", "text": chunk.content}}))
        if chunk.tool_calls:
            for call in chunk.tool_calls:
                self._tool_delta(call, out)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self._close_block(out)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if self.finish_reason is not None and self.usage is not None:
            self._finish(out)
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream stream ended: finish the message with whatever is known."""
        if self.done:
            return b""
        out: list[bytes] = []
        if not self.started:
            out.append(self._message_start(""))
        self._close_block(out)
        self._finish(out)
        return b"".join(out)

    # --- blocks ---------------------------------------------------------------------------------------------

    def _message_start(self, upstream_id: str) -> bytes:
        self.started = True
        return event(b"message_start", {"type": "message_start", "message": {
            "id": message_id(upstream_id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})  # real counts come in message_delta

    def _open_block(self, kind: int, block: dict[str, Any]) -> bytes:
        index = self.block_count
        self.block_count += 1
        self.open_kind = kind
        return event(b"content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _close_block(self, out: list[bytes]) -> None:
        if self.open_kind is not None:
            out.append(event(b"content_block_stop", {"type": "content_block_stop", "index": self.block_count - 1}))
            self.open_kind = None

    def _tool_delta(self, call: ToolCallDelta, out: list[bytes]) -> None:
        index = self.tool_blocks.get(call.index)
        if index is None:  # a new call: its own block
            self._close_block(out)
            index = self.tool_blocks[call.index] = self.block_count
            out.append(self._open_block(call.index, {
                "type": "tool_use", "id": call.id or f"toolu_{os.urandom(12).hex()}", "name": call.name or "",
                "input": {}}))
        # A fragment for an earlier, already closed call (no upstream we know interleaves calls) still goes to
        # its own block index, which the SDKs accumulate correctly.
        if call.arguments:
            out.append(event(b"content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": call.arguments}}))

    def _finish(self, out: list[bytes]) -> None:
        self.done = True
        usage = render_usage(self.usage or Usage())
        reason = stop_reason(self.finish_reason, bool(self.tool_blocks))
        out.append(event(b"message_delta", {
            "type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}))
        out.append(event(b"message_stop", {"type": "message_stop"}))


class ThinkingStreamRenderer(StreamRenderer):
    """A StreamRenderer that shows the thoughts too: reasoning fragments as thinking_delta events of an open
    thinking block, closed by the signature of the finished block (thinking_block chunks: Converse's, sealed) or
    the gateway's own (THOUGHT) when the cloud sends none (Gemini, reasoning servers) and the next block begins."""

    __slots__ = ()

    def feed(self, chunk: ChatChunk) -> bytes:
        if (not chunk.reasoning and chunk.thinking_block is None) or self.done or chunk.index != 0:
            return StreamRenderer.feed(self, chunk)
        out: list[bytes] = []
        if not self.started:
            out.append(self._message_start(chunk.id))
        if chunk.reasoning:
            self._open_thinking(out)
            out.append(self._thinking_delta(chunk.reasoning))
        if chunk.thinking_block is not None:
            self._finish_thought(thinking_block(chunk.thinking_block), out)
        return b"".join(out) + StreamRenderer.feed(self, chunk)  # whatever else the chunk says comes after

    def _open_thinking(self, out: list[bytes]) -> bool:
        """Open a thinking block unless one is; whether it was opened here."""
        if self.open_kind == _THINKING:
            return False
        self._close_block(out)
        out.append(self._open_block(_THINKING, {"type": "thinking", "thinking": "", "signature": ""}))
        return True

    def _finish_thought(self, block: dict[str, Any], out: list[bytes]) -> None:
        if block.get("type") == "redacted_thinking":  # whole at its start, as Anthropic streams it
            self._close_block(out)
            out.append(self._open_block(_THINKING, block))
        elif self._open_thinking(out) and block.get("thinking"):  # thoughts the cloud did not stream
            out.append(self._thinking_delta(block["thinking"]))
        if block.get("type") == "thinking":
            out.append(self._signature_delta(block.get("signature") or THOUGHT))
        self.open_kind = None  # signed: closed without the gateway's signature
        out.append(event(b"content_block_stop", {"type": "content_block_stop", "index": self.block_count - 1}))

    def _close_block(self, out: list[bytes]) -> None:
        if self.open_kind == _THINKING:  # thoughts no cloud signed: the gateway's signature closes them
            out.append(self._signature_delta(THOUGHT))
        StreamRenderer._close_block(self, out)

    def _thinking_delta(self, text: str) -> bytes:
        return event(b"content_block_delta", {"type": "content_block_delta", "index": self.block_count - 1,
                                              "delta": {"type": "thinking_delta", "thinking": text}})

    def _signature_delta(self, signature: str) -> bytes:
        return event(b"content_block_delta", {"type": "content_block_delta", "index": self.block_count - 1,
                                              "delta": {"type": "signature_delta", "signature": signature}})
