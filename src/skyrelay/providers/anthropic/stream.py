"""Anthropic's streaming events -> canonical chunks, in OpenAI's order. Pure: (event, JSON) in, chunks out.

Anthropic:  message_start, then per content block content_block_start / _delta... / _stop, then message_delta
            (stop_reason, cumulative usage), message_stop; `ping` anywhere; `error` ends the stream.
Canonical:  a role chunk, content and tool-call deltas (a tool call's index is the ordinal of its tool_use block
            among the message's tool_use blocks), a finish_reason chunk, one usage-only chunk.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatChunk, ToolCallDelta
from ..base import load_json
from .response import THINKING_KINDS, finish_reason, parse_usage, thinking_block

_TEXT, _TOOL, _JSON_ANSWER, _THINKING = 1, 2, 3, 4  # what a content block's deltas become
_NO_BLOCK = (None, 0)
_PLAIN_HEAD = b"event: content_block_delta\ndata: "


# Error events a stream may carry that are about the request, not the cloud: their HTTP statuses.
_REQUEST_ERRORS = {"invalid_request_error": 400, "request_too_large": 413, "not_found_error": 404}

class StreamDecoder:
    """The state of one Anthropic stream: which block is what, usage so far, whether it ended properly."""

    __slots__ = ("deployment", "json_tool", "id", "model", "created", "counts", "blocks", "tool_count", "done",
                 "reasoning", "thoughts", "argued")

    def __init__(self, deployment: str, json_tool: str | None = None, reasoning: bool = False):
        self.deployment = deployment
        self.json_tool = json_tool
        # Thinking deltas become reasoning chunks (output a stream commits to), each finished block (signature
        # included) a thinking_block chunk.
        self.reasoning = reasoning
        self.thoughts: dict[int, dict[str, Any]] = {}  # open thinking blocks by content block index
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.counts: dict[str, int] = {}  # Anthropic's usage fields, latest known value of each
        self.blocks: dict[int, tuple[int, int]] = {}  # content block index -> (kind, tool-call index)
        self.argued: set[int] = set()  # the tool calls that received input (the others get "{}" at their stop)
        self.tool_count = 0
        self.done = False

    def decode(self, event: str | None, payload: bytes) -> list[ChatChunk]:
        data = load_json(payload, self.deployment, "sent a stream event")
        if not isinstance(data, dict):
            raise errors.UpstreamProtocolError(f"deployment '{self.deployment}' sent a malformed stream event",
                                               deployment=self.deployment)
        handler = _HANDLERS.get(data.get("type") or event)
        return handler(self, data) if handler is not None else []  # unknown events: newer API features, skipped

    def plain(self, events: bytes) -> list[ChatChunk] | None:
        """The chunks of whole SSE events that are all text deltas of text blocks, in their usual spelling
        (`event: content_block_delta`, one `data:` line), or None for anything else. Reading a text delta changes
        nothing in the decoder, so a caller that cannot use the chunks may feed the same bytes again
        (SSEChunks.translated: the rest of a stream, translated in the upstream connection's parser callback)."""
        chunks: list[ChatChunk] = []
        start, end, head = 0, len(events), len(_PLAIN_HEAD)
        while start < end:
            stop = events.find(b"\n\n", start)
            if stop < 0 or not events.startswith(_PLAIN_HEAD, start) or b"\n" in events[start + head:stop]:
                return None
            try:
                data = orjson.loads(events[start + head:stop])
            except orjson.JSONDecodeError:
                return None  # the reader says what is wrong with it
            delta = data.get("delta") if type(data) is dict and data.get("type") == "content_block_delta" else None
            index = data.get("index", 0) if delta is not None else None
            if type(delta) is not dict or delta.get("type") != "text_delta" or type(index) is not int \
                    or self.blocks.get(index, _NO_BLOCK)[0] != _TEXT:
                return None
            text = delta.get("text")
            if text:
                chunks.append(ChatChunk(id=self.id, model=self.model, created=self.created, content=text))
            start = stop + 2
        return chunks

    def _count(self, usage: Any) -> None:
        # message_delta's counts are cumulative and may be null for what it does not report: keep the last number
        if isinstance(usage, dict):
            self.counts.update((k, v) for k, v in usage.items() if isinstance(v, int))

    def _chunk(self, **fields: Any) -> ChatChunk:
        return ChatChunk(id=self.id, model=self.model, created=self.created, **fields)

    def _message_start(self, data: dict) -> list[ChatChunk]:
        message = data.get("message") or {}
        self.id = str(message.get("id", ""))
        self.model = str(message.get("model", ""))
        self._count(message.get("usage"))
        return [self._chunk(role="assistant", content="")]

    def _block_start(self, data: dict) -> list[ChatChunk]:
        block = data.get("content_block") or {}
        index = data.get("index", 0)
        kind = block.get("type")
        if kind == "text":
            self.blocks[index] = (_TEXT, 0)
            text = block.get("text")
            return [self._chunk(content=text)] if text else []
        if kind == "tool_use":
            if self.json_tool is not None and block.get("name") == self.json_tool:
                self.blocks[index] = (_JSON_ANSWER, 0)
                return []
            call = self.tool_count
            self.tool_count += 1
            self.blocks[index] = (_TOOL, call)
            delta = ToolCallDelta(index=call, id=str(block.get("id", "")), name=str(block.get("name", "")))
            return [self._chunk(tool_calls=[delta])]
        if kind in THINKING_KINDS and self.reasoning:
            if kind == "redacted_thinking":  # whole at its start: it has no deltas
                return [self._chunk(thinking_block=thinking_block(block))]
            self.blocks[index] = (_THINKING, 0)
            self.thoughts[index] = {"type": "thinking", "thinking": block.get("thinking") or "",
                                    "signature": block.get("signature") or ""}
        return []  # server-tool blocks have no canonical form

    def _block_stop(self, data: dict) -> list[ChatChunk]:
        index = data.get("index", 0)
        kind, call = self.blocks.get(index, _NO_BLOCK)
        if kind == _TOOL and call not in self.argued:  # no input streamed: no arguments, "{}" (JSON, as a whole
            self.argued.add(call)  # answer says it; OpenAI clients parse it)
            return [self._chunk(tool_calls=[ToolCallDelta(index=call, arguments="{}")])]
        thought = self.thoughts.pop(index, None)
        return [self._chunk(thinking_block=thinking_block(thought))] if thought is not None else []

    def _block_delta(self, data: dict) -> list[ChatChunk]:
        kind, call = self.blocks.get(data.get("index", 0), _NO_BLOCK)
        delta = data.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta" and kind == _TEXT:
            text = delta.get("text")
            return [self._chunk(content=text)] if text else []
        if dtype == "thinking_delta" and self.reasoning:
            thinking = delta.get("thinking")
            thought = self.thoughts.get(data.get("index", 0))
            if thought is not None and thinking:
                thought["thinking"] += thinking
            return [self._chunk(reasoning=thinking)] if thinking else []
        if dtype == "signature_delta":
            thought = self.thoughts.get(data.get("index", 0))
            if thought is not None:
                thought["signature"] += delta.get("signature") or ""
            return []
        if dtype == "input_json_delta":
            fragment = delta.get("partial_json")
            if not fragment:
                return []
            if kind == _TOOL:
                self.argued.add(call)
                return [self._chunk(tool_calls=[ToolCallDelta(index=call, arguments=fragment)])]
            if kind == _JSON_ANSWER:
                return [self._chunk(content=fragment)]
        return []

    def _message_delta(self, data: dict) -> list[ChatChunk]:
        self._count(data.get("usage"))
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        return [self._chunk(finish_reason=finish_reason(stop_reason, self.json_tool))]

    def _message_stop(self, data: dict) -> list[ChatChunk]:
        self.done = True
        return [self._chunk(usage=parse_usage(self.counts))]

    def _error(self, data: dict) -> list[ChatChunk]:
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        kind, said = err.get("type"), err.get("message") or "unknown error"
        message = f"deployment '{self.deployment}' failed mid-stream: {said}"
        if kind == "rate_limit_error":
            raise errors.UpstreamRateLimited(message, deployment=self.deployment)
        status = _REQUEST_ERRORS.get(kind)
        if status is not None:  # the request's own fault, told in the stream: the client's, no verdict on the cloud
            raise errors.UpstreamClientError(str(said), status=status, type=kind, deployment=self.deployment)
        raise errors.UpstreamUnavailable(message, deployment=self.deployment)

    def _ignore(self, data: dict) -> list[ChatChunk]:
        return []

    def finish(self) -> list[ChatChunk]:
        """Call when the upstream body ended: a stream cut before message_stop must not pass for a whole one."""
        if not self.done:
            raise errors.UpstreamUnavailable(
                f"deployment '{self.deployment}' ended the stream before message_stop", deployment=self.deployment)
        return []


_HANDLERS = {
    "message_start": StreamDecoder._message_start,
    "content_block_start": StreamDecoder._block_start,
    "content_block_delta": StreamDecoder._block_delta,
    "content_block_stop": StreamDecoder._block_stop,
    "message_delta": StreamDecoder._message_delta,
    "message_stop": StreamDecoder._message_stop,
    "ping": StreamDecoder._ignore,
    "error": StreamDecoder._error,
}
