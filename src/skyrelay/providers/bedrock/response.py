"""Bedrock Converse response body -> canonical ChatResponse (pure), plus the pieces the stream decoder shares."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatResponse, Choice, ToolCall, Usage
from ..base import as_int
from .reasoning import thought

# Bedrock stop reasons -> OpenAI finish reasons; anything new or unknown reads as a plain stop.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


def parse_usage(usage: Any) -> Usage:
    """Bedrock counts cache reads and writes apart from inputTokens; canonical input includes them, with the
    cache reads as the cached part (OpenAI's prompt_tokens / cached_tokens)."""
    if not isinstance(usage, dict):
        return Usage()
    cache_read = as_int(usage.get("cacheReadInputTokens"))
    cache_write = as_int(usage.get("cacheWriteInputTokens"))
    return Usage(input_tokens=as_int(usage.get("inputTokens")) + cache_read + cache_write,
                 output_tokens=as_int(usage.get("outputTokens")), cached_tokens=cache_read,
                 cache_write_tokens=cache_write)


def parse_converse_response(data: Any, model: str, response_id: str, deployment: str) -> ChatResponse:
    output = data.get("output") if isinstance(data, dict) else None
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no output message",
                                           deployment=deployment)
    texts: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[dict[str, Any]] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(id=str(use.get("toolUseId", "")), name=str(use.get("name", "")),
                                  arguments=orjson.dumps(use.get("input", {})).decode()))
        elif "reasoningContent" in block:  # the thinking of a model that reasons through Converse (reasoning.py)
            shown = thought(block["reasoningContent"], model)
            if shown is not None:
                thoughts.append(shown)
        # citations, images: no place in an OpenAI chat completion
    choice = Choice(content="".join(texts) if texts else None, tool_calls=calls,
                    finish_reason=finish_reason(data.get("stopReason")), thinking_blocks=thoughts or None)
    return ChatResponse(id=response_id, model=model, created=int(time.time()), choices=[choice],
                        usage=parse_usage(data.get("usage")))
