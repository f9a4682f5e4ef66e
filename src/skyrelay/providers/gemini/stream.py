"""Gemini's `streamGenerateContent?alt=sse` -> canonical chunks, in OpenAI's order.

Each SSE event is a whole GenerateContentResponse holding the new parts only; a functionCall part arrives
whole, so it becomes one ToolCallDelta with id, name and the complete arguments. usageMetadata rides on the
last event(s). The decoder is pure (bytes of one event in, chunks out) so tests need no network.
"""

from __future__ import annotations

import time
from typing import Any

from ... import errors
from ...canonical import UNREPORTED_USAGE, ChatChunk, ToolCallDelta, Usage
from ..base import load_json
from .failures import error_from_body
from .response import chat_id, finish_reason, parse_usage, prompt_blocked, read_parts


class _Candidate:
    __slots__ = ("calls", "finished")

    def __init__(self):
        self.calls = 0  # tool calls seen so far: the next call's ToolCallDelta index
        self.finished = False


class StreamDecoder:
    """Decode each SSE event; get the chunks it means. `finish()` closes the stream."""

    __slots__ = ("deployment", "model", "id", "created", "candidates", "usage", "started")
    done = False  # Gemini marks no end of the answer: the body's end is the stream's end

    def __init__(self, deployment: str, model: str):
        self.deployment = deployment
        self.model = model
        self.id = ""
        self.created = 0
        self.candidates: dict[int, _Candidate] = {}
        self.usage: Usage | None = None
        self.started = False

    def decode(self, event: str | None, payload: bytes) -> list[ChatChunk]:
        data = self._load(payload)
        if not self.started:
            self.started = True
            self.id = chat_id(data)
            self.model = str(data.get("modelVersion") or self.model)
            self.created = int(time.time())
        out: list[ChatChunk] = []
        candidates = data.get("candidates")
        if isinstance(candidates, list):
            for position, candidate in enumerate(candidates):
                if isinstance(candidate, dict):
                    self._candidate(candidate, position, out)
        elif prompt_blocked(data) and not self.candidates:
            self._start(0, out)
            self.candidates[0].finished = True
            out.append(self._chunk(index=0, finish_reason="content_filter"))
        if isinstance(data.get("usageMetadata"), dict):
            self.usage = parse_usage(data["usageMetadata"])  # cumulative: the last one counts
        return out

    def finish(self) -> list[ChatChunk]:
        """The closing usage chunk; an error if the stream stopped short."""
        if not self.started:
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' ended the stream before any event", deployment=self.deployment)
        if not self.candidates or not all(c.finished for c in self.candidates.values()):
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' ended the stream before a finish reason", deployment=self.deployment)
        return [self._chunk(usage=self.usage or UNREPORTED_USAGE)]

    def _load(self, payload: bytes) -> dict[str, Any]:
        data = load_json(payload, self.deployment, "sent a stream event")
        if not isinstance(data, dict):
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' sent a malformed stream event", deployment=self.deployment)
        if isinstance(data.get("error"), dict):
            raise error_from_body(data["error"], self.deployment)
        return data

    def _candidate(self, candidate: dict[str, Any], position: int, out: list[ChatChunk]) -> None:
        index = candidate.get("index")
        index = index if isinstance(index, int) else position
        state = self._start(index, out)
        text, calls, thoughts = read_parts(candidate)
        if thoughts:
            out.append(self._chunk(index=index, reasoning=thoughts))
        if text:
            out.append(self._chunk(index=index, content=text))
        if calls:
            deltas = []
            for call_id, name, arguments in calls:
                deltas.append(ToolCallDelta(index=state.calls, id=call_id, name=name, arguments=arguments))
                state.calls += 1
            out.append(self._chunk(index=index, tool_calls=deltas))
        reason = finish_reason(candidate.get("finishReason"), state.calls > 0)
        if reason is not None and not state.finished:
            state.finished = True
            out.append(self._chunk(index=index, finish_reason=reason))

    def _start(self, index: int, out: list[ChatChunk]) -> _Candidate:
        state = self.candidates.get(index)
        if state is None:
            state = self.candidates[index] = _Candidate()
            out.append(self._chunk(index=index, role="assistant", content=""))
        return state

    def _chunk(self, **fields: Any) -> ChatChunk:
        return ChatChunk(id=self.id, model=self.model, created=self.created, **fields)
