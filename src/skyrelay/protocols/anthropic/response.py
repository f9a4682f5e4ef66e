"""Canonical responses and gateway errors -> Anthropic Messages bodies."""

from __future__ import annotations

import os
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatResponse, Usage
from ...seals import THOUGHT

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
# Anthropic's error types by HTTP status; any other 4xx is invalid_request_error, any other 5xx api_error.
_ERROR_TYPES = {
    401: "authentication_error", 403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
}


def render_message(resp: ChatResponse, model: str, thinking: bool = False) -> bytes:
    """The whole answer as an Anthropic `message`; `model` is the name the client asked for; `thinking`: the
    client asked for thinking, so the cloud's thoughts open the content, as thinking blocks."""
    choice = resp.choices[0] if resp.choices else None
    content: list[dict[str, Any]] = []
    reason = "end_turn"
    if choice is not None:
        if thinking and choice.thinking_blocks:
            content += map(thinking_block, choice.thinking_blocks)
        text = choice.content if choice.content else choice.refusal
        if text:
            content.append({"type": "text", "text": text})
        for call in choice.tool_calls:
            content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
        reason = stop_reason(choice.finish_reason, bool(choice.tool_calls))
        if choice.refusal and not choice.content:
            reason = "refusal"
    return orjson.dumps({
        "id": message_id(resp.id), "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": reason, "stop_sequence": None, "usage": render_usage(resp.usage),
    })


def thinking_block(block: dict[str, Any]) -> dict[str, Any]:
    """A canonical thinking block as Anthropic shows it: another cloud's thought becomes a `thinking` block whose
    signature is the gateway's (seals.py), which the SDKs and Claude Code keep and hand back."""
    if block.get("type") != "thought":
        return block  # Anthropic's own (signed thinking, redacted_thinking)
    return {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or THOUGHT}


def stop_reason(finish_reason: str | None, has_tool_calls: bool) -> str:
    # Some upstreams say "stop" after tool calls; Anthropic clients loop on "tool_use", so the calls decide.
    if has_tool_calls and finish_reason in (None, "stop", "tool_calls"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def render_usage(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from input_tokens; canonical input_tokens includes them."""
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """Anthropic's `input` is always an object. A model's malformed JSON is kept, not dropped, under a key that
    says what it is, so the client's tool sees it and can report it."""
    if not arguments or arguments.isspace():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": arguments}
    return value if isinstance(value, dict) else {"_unparsed_arguments": arguments}


def message_id(upstream_id: str) -> str:
    """Anthropic ids start with msg_; keep the upstream's id inside it so logs on both sides still match."""
    if upstream_id.startswith("msg_"):
        return upstream_id
    return f"msg_{upstream_id}" if upstream_id else f"msg_{os.urandom(12).hex()}"


def new_request_id() -> str:
    return f"req_{os.urandom(12).hex()}"


def error_type(err: errors.GatewayError) -> str:
    status = err.status
    if status == 503 and not isinstance(err, (errors.NoDeploymentAvailable, errors.UpstreamUnavailable)):
        return "api_error"  # the gateway's own database or store away: not the models' capacity
    if status == 409:
        return "conflict_error"
    found = _ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(err: errors.GatewayError, request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(err), "message": _message(err)},
            "request_id": request_id or new_request_id()}


def _message(err: errors.GatewayError) -> str:
    """The error's message, a prompt over the context window said as Anthropic says it ("prompt is too long:
    ..."): whatever cloud or check found it (OpenAI's context_length_exceeded, the gateway's own estimate), that is
    the wording Claude Code and other Anthropic clients recognise to compact the conversation and try again."""
    message = err.message
    if getattr(err, "code", None) == "context_length_exceeded" and not message.lower().startswith(_TOO_LONG):
        return f"{_TOO_LONG}: {message}"
    return message


_TOO_LONG = "prompt is too long"


def render_error(err: errors.GatewayError, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_body(err, request_id))


def render_stream_error(err: errors.GatewayError, request_id: str | None = None) -> bytes:
    """A mid-stream failure: the SDKs raise on an `error` event."""
    return b"event: error\ndata: " + orjson.dumps(error_body(err, request_id)) + b"\n\n"
