"""Anthropic Messages API response body -> canonical ChatResponse. Pure: dict in, dataclass out."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatResponse, Choice, ToolCall, Usage
from ..base import as_int

_FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, json_tool: str | None = None) -> str:
    """Anthropic's stop_reason as a canonical finish reason; a forced JSON-answer tool call is a normal stop."""
    if stop_reason == "tool_use" and json_tool is not None:
        return "stop"
    return _FINISH_REASONS.get(stop_reason, "stop")


THINKING_KINDS = frozenset({"thinking", "redacted_thinking"})


def thinking_block(block: dict[str, Any]) -> dict[str, Any]:
    """A thinking block as the canonical answer keeps it: what a later turn must hand back, nothing more."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": str(block.get("data") or "")}
    return {"type": "thinking", "thinking": str(block.get("thinking") or ""),
            "signature": str(block.get("signature") or "")}


def parse_usage(usage: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from input_tokens; canonical input includes both."""
    if not isinstance(usage, dict):
        return Usage()
    cached = as_int(usage.get("cache_read_input_tokens"))
    written = as_int(usage.get("cache_creation_input_tokens"))
    # Positional (input, output, cached, cache writes): keywords cost a fifth more, on every answer and stream.
    return Usage(as_int(usage.get("input_tokens")) + cached + written, as_int(usage.get("output_tokens")), cached,
                 written)


def parse_message(data: Any, deployment: str, json_tool: str | None = None) -> ChatResponse:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no message content",
                                           deployment=deployment)
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[dict[str, Any]] = []
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool is not None and block.get("name") == json_tool:
                texts.append(arguments)  # the JSON answer asked for through response_format
            else:
                calls.append(ToolCall(id=str(block.get("id", "")), name=str(block.get("name", "")),
                                      arguments=arguments))
        elif kind in THINKING_KINDS:
            thinking.append(thinking_block(block))
        # server-tool blocks have no place in the canonical answer
    content = "".join(texts) if texts or not calls else None
    choice = Choice(content=content, tool_calls=calls, finish_reason=finish_reason(data.get("stop_reason"), json_tool),
                    thinking_blocks=thinking or None)
    return ChatResponse(id=str(data.get("id", "")), model=str(data.get("model", "")), created=int(time.time()),
                        choices=[choice], usage=parse_usage(data.get("usage")))
