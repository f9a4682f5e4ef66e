"""ConverseStream (binary AWS event stream) -> canonical chunks in OpenAI's order.

eventstream.py does the framing (prelude, headers, CRCs, frames split across reads); this module only reads the
events: messageStart -> the role chunk, text and tool-input deltas -> content and tool-call deltas,
messageStop -> the finish chunk, metadata -> the usage chunk. Exception events raise typed errors.

The role chunk is held back until the next event that says something: an exception right after messageStart
(throttling, a model error) then fails the stream before its first chunk, so the dispatcher can still fail over
invisibly. The client sees no delay: the role chunk never carried content.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import orjson

from ... import errors
from ...canonical import UNREPORTED_USAGE, ChatChunk, ToolCallDelta
from ..base import load_json, translating_sink
from .errors import error_from_event
from .eventstream import EventStreamReader
from .reasoning import delta_signature, delta_text, sealed_signature
from .response import finish_reason, parse_usage


class ConverseStreamDecoder:
    """Feed raw response bytes, get canonical chunks back; raises typed errors for exception events."""

    __slots__ = ("_buffer", "id", "model", "created", "deployment", "_tool_index", "_role_pending", "stopped",
                 "usage_sent", "_argued")

    def __init__(self, response_id: str, model: str, deployment: str):
        self._buffer = EventStreamReader()
        self.id = response_id
        self.model = model
        self.created = int(time.time())
        self.deployment = deployment
        self._tool_index: dict[int, int] = {}  # Bedrock contentBlockIndex -> OpenAI tool_calls index
        self._argued: set[int] = set()  # the tool calls that received input: one that received none has "{}"
        self._role_pending = False  # messageStart seen, its role chunk not yet sent
        self.stopped = False  # messageStop seen: the answer is complete
        self.usage_sent = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        chunks = []
        try:
            for headers, payload in self._buffer.feed(data):
                chunk = self._on_message(headers, payload)
                if chunk is not None:
                    if self._role_pending:
                        self._role_pending = False
                        chunks.append(self._chunk(role="assistant", content=""))
                    chunks.append(chunk)
        except ValueError as exc:  # MalformedEventStream (a bad CRC, length or header): not an event stream
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' sent a malformed event stream: {type(exc).__name__}",
                deployment=self.deployment) from None
        return chunks

    def plain(self, data: bytes) -> list[ChatChunk] | None:
        """The chunks of reads of whole frames that are all text deltas, or None for anything else; reading them
        changes nothing here, so a caller that cannot use them may feed the same bytes again."""
        if self._role_pending or self.stopped:
            return None
        frames = self._buffer.whole(data)
        if frames is None:
            return None
        chunks: list[ChatChunk] = []
        for headers, payload in frames:
            if headers.get(":event-type") != "contentBlockDelta" or headers.get(":message-type", "event") != "event":
                return None
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return None
            delta = event.get("delta") if type(event) is dict else None
            text = delta.get("text") if type(delta) is dict else None
            if type(text) is not str:
                return None
            if text:
                chunks.append(ChatChunk(id=self.id, model=self.model, created=self.created, content=text))
        return chunks

    def translated(self, write: Callable[[bytes], bool], render: Callable[[ChatChunk], bytes]
                   ) -> Callable[[bytes], bool]:
        """The pipe's sink (base.translating_sink): the text deltas, rendered in the parser callback."""
        return translating_sink(self.plain, write, render)

    def finish(self) -> list[ChatChunk]:
        """The upstream ended the body: check the answer was complete; a usage chunk if none came."""
        if not self.stopped:
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' ended the stream before messageStop", deployment=self.deployment)
        if self.usage_sent:
            return []
        self.usage_sent = True
        return [self._chunk(usage=UNREPORTED_USAGE)]

    def _chunk(self, **fields: Any) -> ChatChunk:
        return ChatChunk(id=self.id, model=self.model, created=self.created, **fields)

    def _on_message(self, headers: dict[str, Any], payload: bytes) -> ChatChunk | None:
        if headers.get(":message-type", "event") != "event":
            raise error_from_event(headers, payload, self.deployment)
        event = headers.get(":event-type")
        if event == "initial-response":
            return None
        data = load_json(payload, self.deployment, f"sent a {event} event") if payload else {}
        handler = _HANDLERS.get(event)
        return handler(self, data) if handler is not None else None  # new event types: ignore, like SDKs do

    # --- events -------------------------------------------------------------------------------------------------

    def _message_start(self, data: dict) -> None:
        self._role_pending = True

    def _block_start(self, data: dict) -> ChatChunk | None:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return None
        index = self._tool_slot(data.get("contentBlockIndex"))
        return self._chunk(tool_calls=[ToolCallDelta(index=index, id=str(use.get("toolUseId", "")),
                                                     name=str(use.get("name", "")))])

    def _block_delta(self, data: dict) -> ChatChunk | None:
        delta = data.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str):
            return self._chunk(content=text) if text else None
        use = delta.get("toolUse")
        if isinstance(use, dict):
            index = self._tool_slot(data.get("contentBlockIndex"))
            arguments = str(use.get("input", ""))
            if arguments:
                self._argued.add(index)
            return self._chunk(tool_calls=[ToolCallDelta(index=index, arguments=arguments)])
        if "reasoningContent" in delta:  # thinking, then its signature (redacted parts are kept by nobody)
            reasoning = delta["reasoningContent"]
            text = delta_text(reasoning)
            if text:
                return self._chunk(reasoning=text)
            signature = delta_signature(reasoning)
            if signature is None:
                return None
            # The finished thought: its text went out as reasoning fragments; the block carries the signature.
            return self._chunk(thinking_block={"type": "thought", "thinking": "",
                                               "signature": sealed_signature(signature, self.model)})
        return None  # citations: not part of an OpenAI chat completion

    def _block_stop(self, data: dict) -> ChatChunk | None:
        """A tool call that streamed no input takes no arguments: "{}", as a whole answer says it (an empty string
        is no JSON, and OpenAI clients parse the arguments)."""
        index = self._tool_index.get(data.get("contentBlockIndex"))
        if index is None or index in self._argued:
            return None
        self._argued.add(index)
        return self._chunk(tool_calls=[ToolCallDelta(index=index, arguments="{}")])

    def _message_stop(self, data: dict) -> ChatChunk:
        self.stopped = True
        return self._chunk(finish_reason=finish_reason(data.get("stopReason")))

    def _metadata(self, data: dict) -> ChatChunk:
        self.usage_sent = True
        return self._chunk(usage=parse_usage(data.get("usage")))

    def _tool_slot(self, block_index: Any) -> int:
        slot = self._tool_index.get(block_index)
        if slot is None:
            slot = self._tool_index[block_index] = len(self._tool_index)
        return slot


_HANDLERS = {
    "messageStart": ConverseStreamDecoder._message_start,
    "contentBlockStart": ConverseStreamDecoder._block_start,
    "contentBlockDelta": ConverseStreamDecoder._block_delta,
    "contentBlockStop": ConverseStreamDecoder._block_stop,
    "messageStop": ConverseStreamDecoder._message_stop,
    "metadata": ConverseStreamDecoder._metadata,
}
