"""The canonical answer -> a Responses API `Response` object (whole answers, and the snapshots a stream carries).

The request's own settings are echoed back, as OpenAI's answer does (the SDKs read `tools`, `tool_choice` and
`text` from it); the output is a `message` item with one `output_text` part, then one `function_call` item per
tool call.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatResponse, Usage
from . import reasoning
from .request import NAMESPACE_SEPARATOR

# finish_reason -> (status, incomplete_details)
_INCOMPLETE = {"length": {"reason": "max_output_tokens"}, "content_filter": {"reason": "content_filter"}}
_EMPTY_TEXT_FORMAT = {"format": {"type": "text"}}


def new_id() -> str:
    return os.urandom(12).hex()


def base(data: dict[str, Any], response_id: str, model: str, created_at: int, status: str) -> dict[str, Any]:
    """Every field of a Response but `output` and `usage`, from the request as the client sent it."""
    body = {
        "id": f"resp_{response_id}", "object": "response", "created_at": created_at, "status": status,
        "completed_at": None, "error": None, "incomplete_details": None,
        "instructions": data.get("instructions"), "max_output_tokens": data.get("max_output_tokens"),
        "model": model, "output": [], "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "previous_response_id": data.get("previous_response_id"),
        "reasoning": data.get("reasoning") or {"effort": None, "summary": None},
        "store": data.get("store") is not False, "temperature": data.get("temperature"), "text": data.get("text") or _EMPTY_TEXT_FORMAT,
        "tool_choice": data.get("tool_choice") or "auto", "tools": [_echo_tool(t) for t in data.get("tools") or ()],
        "top_p": data.get("top_p"), "truncation": data.get("truncation") or "disabled",
        "metadata": data.get("metadata") or {},
    }
    if data.get("user") is not None:  # the schema has no null here
        body["user"] = data["user"]
    return body


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as a Response lists it: `strict` and `parameters` always present (null when not sent)."""
    return {"strict": None, "parameters": None, **tool} if tool.get("type") == "function" else tool


def finish(body: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """Mark a response body finished: completed, or incomplete when the cloud stopped at the cap or a filter."""
    details = _INCOMPLETE.get(finish_reason or "")
    body["status"] = "incomplete" if details else "completed"
    body["incomplete_details"] = details
    body["completed_at"] = int(time.time())
    return body


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [text_part(text)] if text is not None else []}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, data: dict[str, Any],
              status: str = "completed") -> dict[str, Any]:
    item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}
    if NAMESPACE_SEPARATOR in name:  # maybe a namespaced tool's flattened name (request.py): split it back
        namespace, _, short = name.partition(NAMESPACE_SEPARATOR)
        if any(t.get("type") == "namespace" and t.get("name") == namespace for t in data.get("tools") or ()):
            item["namespace"], item["name"] = namespace, short
    return item


def render_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def render_response(resp: ChatResponse, data: dict[str, Any]) -> bytes:
    return orjson.dumps(response_object(resp, data))


def response_object(resp: ChatResponse, data: dict[str, Any], kept: dict[str, str] | None = None) -> dict[str, Any]:
    """The Response for a canonical answer (what the store keeps, and the client gets as JSON); `kept` receives
    the seals of reasoning items the client was not shown (reasoning.Shown)."""
    response_id = new_id()
    body = base(data, response_id, data["model"], resp.created or int(time.time()), "completed")
    choice = resp.choices[0] if resp.choices else None
    output = body["output"]
    if choice is not None:
        if choice.thinking_blocks:  # the thoughts come first, as the cloud produced them
            shown = reasoning.Shown(data, kept)
            for i, block in enumerate(choice.thinking_blocks):
                output.append(reasoning.item(f"rs_{response_id}_{i}", [block], shown))
        if choice.content:
            output.append(message_item(f"msg_{response_id}", choice.content))
        elif choice.refusal:
            output.append({**message_item(f"msg_{response_id}", None),
                           "content": [{"type": "refusal", "refusal": choice.refusal}]})
        for i, call in enumerate(choice.tool_calls):
            output.append(call_item(f"fc_{response_id}_{i}", call.id, call.name, call.arguments, data))
    body["usage"] = render_usage(resp.usage)
    return finish(body, choice.finish_reason if choice else None)


def render_error(err: errors.GatewayError) -> bytes:
    return orjson.dumps({"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}})
