"""The OpenAI wire format, inbound: request bodies -> canonical, canonical -> response bodies and SSE chunks.

Validation is deliberately shallow and cheap (types of the fields the gateway reads, the shape of messages):
a full schema check of every body would cost more than the rest of the hop, and the upstream validates the rest.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import errors
from ..canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from .fields import NUMBER, is_kind, load_body, type_name

# Fields the gateway reads itself; everything else in a body is passed through as `extra`.
_CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "stop", "tools", "tool_choice", "response_format",
})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NESTED_PARTS = frozenset({"image_url", "input_audio", "file"})  # part types whose payload is an object


def parse_chat(body: bytes) -> ChatRequest:
    data = load_body(body)
    model = _require(data, "model", str)
    messages = _require(data, "messages", list)
    if not messages:
        raise errors.InvalidRequest("'messages' must contain at least one message", param="messages")
    for i, msg in enumerate(messages):
        _check_message(msg, i)
    _check_types(data, _TYPED_FIRST)
    stream = data.get("stream") or False
    stream_options = data.get("stream_options")
    include_usage = False
    if stream_options is not None:
        include_usage = _optional(stream_options, "include_usage", bool, "stream_options.include_usage") or False
    max_tokens = data.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = _optional(data, "max_tokens", int)
    if max_tokens is not None and max_tokens < 1:
        raise errors.InvalidRequest("max_tokens must be at least 1", param="max_tokens")
    stop = data.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise errors.InvalidRequest("'stop' must be a string or an array of strings", param="stop")
    tool_choice = data.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, (str, dict)):
        raise errors.InvalidRequest("'tool_choice' must be a string or an object", param="tool_choice")
    tools = _optional(data, "tools", list)
    if tools is not None or tool_choice is not None:
        _check_tools(tools, tool_choice)
    _check_types(data, _TYPED_LAST)
    response_format = data.get("response_format")
    if response_format is not None and response_format.get("type") == "json_schema":
        _check_json_schema(response_format.get("json_schema"))
    return ChatRequest(
        model=model, messages=messages, stream=stream, include_usage=include_usage, max_tokens=max_tokens,
        temperature=data.get("temperature"), top_p=data.get("top_p"), stop=stop, tools=tools, tool_choice=tool_choice,
        response_format=data.get("response_format"),
        extra={k: v for k, v in data.items() if k not in _CHAT_FIELDS}, raw=data,
    )


# The optional fields whose JSON type is checked before they are read, in the order their errors are reported
# (first these, then max_tokens, stop, tool_choice and tools, then the last ones).
_TYPED_FIRST = (("stream", bool), ("stream_options", dict), ("max_completion_tokens", int))
_TYPED_LAST = (("temperature", NUMBER), ("top_p", NUMBER), ("response_format", dict))


def _check_types(data: dict, fields: tuple[tuple[str, type | tuple], ...]) -> None:
    """`_optional`'s check of several fields in one call: most are absent, and the request path pays per call."""
    for name, kind in fields:
        value = data.get(name)
        if value is not None and not is_kind(value, kind):
            raise errors.InvalidRequest(f"'{name}' must be of type {type_name(kind)}", param=name)


def _check_json_schema(spec: Any) -> None:
    """`response_format: {type: json_schema}`'s `json_schema`, as OpenAI requires it: an object with a `name`,
    and a `schema` object when given (every cloud's translation reads those two)."""
    where = "response_format.json_schema"
    if spec is None:
        raise errors.InvalidRequest(f"missing required parameter: '{where}'", param=where)
    if not isinstance(spec, dict):
        raise errors.InvalidRequest(f"'{where}' must be an object", param=where)
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise errors.InvalidRequest(f"missing required parameter: '{where}.name'", param=f"{where}.name")
    if spec.get("schema") is not None and not isinstance(spec["schema"], dict):
        raise errors.InvalidRequest(f"'{where}.schema' must be an object", param=f"{where}.schema")


def _check_message(msg: Any, i: int) -> None:
    if not isinstance(msg, dict):
        raise errors.InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
    role = msg.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise errors.InvalidRequest(
            f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}; got {role!r}", param=f"messages[{i}].role")
    content = msg.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise errors.InvalidRequest(f"messages[{i}].content[{j}] must be an object with a string 'type'",
                                            param=f"messages[{i}].content[{j}]")
            kind = part["type"]
            if kind in _NESTED_PARTS and not isinstance(part.get(kind), dict):
                raise errors.InvalidRequest(f"messages[{i}].content[{j}].{kind} must be an object",
                                            param=f"messages[{i}].content[{j}].{kind}")
    elif content is not None and not isinstance(content, str):
        raise errors.InvalidRequest(f"messages[{i}].content must be a string or an array of content parts",
                                    param=f"messages[{i}].content")
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise errors.InvalidRequest(f"messages[{i}].tool_calls must be an array", param=f"messages[{i}].tool_calls")
        for j, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise errors.InvalidRequest(f"messages[{i}].tool_calls[{j}] must be an object with a 'function' object",
                                            param=f"messages[{i}].tool_calls[{j}]")


def _check_tools(tools: list | None, tool_choice: Any) -> None:
    """The shapes every provider relies on; the rest of each tool is the upstream's to judge."""
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise errors.InvalidRequest(f"tools[{i}] must be an object with a string 'type'", param=f"tools[{i}]")
        if tool["type"] == "function" and not isinstance(tool.get("function"), dict):
            raise errors.InvalidRequest(f"tools[{i}].function must be an object", param=f"tools[{i}].function")
    if isinstance(tool_choice, dict):
        kind = tool_choice.get("type")
        if not isinstance(kind, str):
            raise errors.InvalidRequest("tool_choice.type must be a string", param="tool_choice")
        if kind == "function" and not isinstance(tool_choice.get("function"), dict):
            raise errors.InvalidRequest("tool_choice.function must be an object with a 'name'", param="tool_choice")


def _require(data: dict, name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        raise errors.InvalidRequest(f"missing required parameter: '{name}'", param=name)
    if not is_kind(value, kind):
        raise errors.InvalidRequest(f"'{name}' must be of type {type_name(kind)}", param=name)
    return value


def _optional(data: dict, name: str, kind: type | tuple, param: str | None = None) -> Any:
    value = data.get(name)
    if value is not None and not is_kind(value, kind):
        raise errors.InvalidRequest(f"'{param or name}' must be of type {type_name(kind)}", param=param or name)
    return value


def parse_embeddings(body: bytes) -> EmbeddingRequest:
    data = load_body(body)
    model = _require(data, "model", str)
    value = data.get("input")
    if value is None:
        raise errors.InvalidRequest("missing required parameter: 'input'", param="input")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise errors.InvalidRequest("'input' must be a string or a non-empty array", param="input")
    return EmbeddingRequest(model=model, input=value,
                            extra={k: v for k, v in data.items() if k not in ("model", "input")}, raw=data)


# --- rendering -----------------------------------------------------------------------------------------------------


def render_chat(resp: ChatResponse) -> bytes:
    if resp.raw_body is not None:
        return resp.raw_body
    if resp.raw is not None:
        return orjson.dumps(resp.raw)
    choices = []
    for c in resp.choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": c.refusal}
        if c.tool_calls:
            message["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
                for tc in c.tool_calls
            ]
        choices.append({"index": c.index, "message": message, "logprobs": None, "finish_reason": c.finish_reason})
    return orjson.dumps({
        "id": resp.id, "object": "chat.completion", "created": resp.created, "model": resp.model,
        "choices": choices, "usage": render_usage(resp.usage),
    })


def render_usage(usage: Usage) -> dict[str, Any]:
    rendered = {
        "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if usage.reasoning_tokens:  # a thinking cloud's own count (Gemini's thoughts), part of completion_tokens
        rendered["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return rendered


def render_chunk(chunk: ChatChunk) -> bytes:
    """One SSE event for a chunk (the upstream's own JSON when it has one), or the upstream's passed-through events.
    Nothing for a chunk of thoughts alone: chat completions leave them out, and an empty delta in their place
    would say nothing (the server writes no empty chunk)."""
    if chunk.sse is not None:
        return chunk.sse
    if chunk.raw is not None:
        return b"data: " + chunk.raw + b"\n\n"
    if (chunk.reasoning is not None or chunk.thinking_block is not None) and _says_nothing_else(chunk):
        return b""
    base = {"id": chunk.id, "object": "chat.completion.chunk", "created": chunk.created, "model": chunk.model}
    if chunk.usage is not None and chunk.finish_reason is None and chunk.content is None and not chunk.tool_calls:
        body = {**base, "choices": [], "usage": render_usage(chunk.usage)}
    else:
        delta: dict[str, Any] = {}
        if chunk.role is not None:
            delta["role"] = chunk.role
        if chunk.content is not None:
            delta["content"] = chunk.content
        if chunk.tool_calls:
            delta["tool_calls"] = [_render_tool_delta(tc) for tc in chunk.tool_calls]
        body = {**base, "choices": [
            {"index": chunk.index, "delta": delta, "logprobs": None, "finish_reason": chunk.finish_reason}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _says_nothing_else(chunk: ChatChunk) -> bool:
    return (chunk.role is None and chunk.content is None and not chunk.tool_calls and chunk.finish_reason is None
            and chunk.usage is None)


def _render_tool_delta(tc) -> dict[str, Any]:
    out: dict[str, Any] = {"index": tc.index}
    function: dict[str, Any] = {"arguments": tc.arguments}
    if tc.id is not None:
        out["id"] = tc.id
        out["type"] = "function"
    if tc.name is not None:
        function["name"] = tc.name
    out["function"] = function
    return out


STREAM_DONE = b"data: [DONE]\n\n"


def render_stream_error(err: errors.GatewayError) -> bytes:
    """An in-band error event: the openai SDKs raise on a chunk carrying `error`."""
    return b"data: " + orjson.dumps({"error": _error_body(err)}) + b"\n\n"


def render_embeddings(resp: EmbeddingResponse) -> bytes:
    if resp.raw is not None:
        return orjson.dumps(resp.raw)
    return orjson.dumps({
        "object": "list", "data": resp.data, "model": resp.model,
        "usage": {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.input_tokens},
    })


def render_models(names: list[str], created: int) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model(name, created) for name in names]})


def render_model(name: str, created: int) -> bytes:
    return orjson.dumps(_model(name, created))


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "skyrelay"}


def render_error(err: errors.GatewayError) -> bytes:
    return orjson.dumps({"error": _error_body(err)})


def _error_body(err: errors.GatewayError) -> dict[str, Any]:
    return {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
