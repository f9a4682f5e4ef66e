"""A Gemini `GenerateContentResponse` -> canonical response; the pieces streams reuse (parts, finish, usage)."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatResponse, Choice, ToolCall, Usage
from ..base import as_int
from .callids import new_call_id
from .failures import error_from_body

_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                       "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"})


def parse_response(data: Any, deployment: str, model: str) -> ChatResponse:
    if not isinstance(data, dict):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered a body that is not an object",
                                           deployment=deployment)
    if isinstance(data.get("error"), dict):
        raise error_from_body(data["error"], deployment)
    candidates = data.get("candidates")
    choices = []
    if isinstance(candidates, list) and candidates:
        for i, candidate in enumerate(candidates):
            choices.append(parse_candidate(candidate, i))
    elif prompt_blocked(data):
        choices.append(Choice(index=0, content="", finish_reason="content_filter"))
    else:
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no candidates", deployment=deployment)
    return ChatResponse(id=chat_id(data), model=str(data.get("modelVersion") or model), created=int(time.time()),
                        choices=choices, usage=parse_usage(data.get("usageMetadata")))


def parse_candidate(candidate: Any, position: int) -> Choice:
    if not isinstance(candidate, dict):
        candidate = {}
    text, calls, thoughts = read_parts(candidate)
    index = candidate.get("index")
    return Choice(
        index=index if isinstance(index, int) else position,
        content=text if text or not calls else None,
        tool_calls=[ToolCall(id=call_id, name=name, arguments=arguments) for call_id, name, arguments in calls],
        finish_reason=finish_reason(candidate.get("finishReason"), bool(calls)) or "stop",
        thinking_blocks=[{"type": "thought", "thinking": thoughts}] if thoughts else None,
    )


def read_parts(candidate: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]], str]:
    """The candidate's visible text, its function calls as (id, name, JSON), and its thought summary (parts
    marked `thought`, sent only when includeThoughts asked)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[tuple[str, str, str]] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if part.get("thought"):
            if isinstance(text, str):
                thoughts.append(text)
            continue
        if isinstance(text, str):
            texts.append(text)
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            calls.append((new_call_id(part.get("thoughtSignature")), str(call.get("name") or ""),
                          orjson.dumps(args if isinstance(args, dict) else {}).decode()))
    return "".join(texts), calls, "".join(thoughts)


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    """OpenAI's finish reason for Gemini's; None while the candidate is still going."""
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    # STOP, and the rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...): the model stopped, nothing was cut
    return "tool_calls" if has_calls else "stop"


def prompt_blocked(data: dict[str, Any]) -> bool:
    feedback = data.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def parse_usage(meta: Any) -> Usage:
    """Thinking tokens are billed as output (and counted apart); tool-use prompt tokens as input."""
    if not isinstance(meta, dict):
        return Usage()
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=as_int(meta.get("promptTokenCount")) + as_int(meta.get("toolUsePromptTokenCount")),
        output_tokens=as_int(meta.get("candidatesTokenCount")) + thoughts,
        cached_tokens=as_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def chat_id(data: dict[str, Any]) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else (
        "chatcmpl-" + os.urandom(12).hex())
