"""Anthropic Messages request bodies -> the canonical (OpenAI-shaped) ChatRequest, on demand.

`read_messages` reads only what the gateway itself needs (model, max_tokens, stream) and keeps the client's body:
an Anthropic-family cloud forwards it as it came, with every feature (cache_control, thinking and its signed
blocks, context_management, documents, betas). The canonical fields are filled (`convert`) only when another cloud
serves the request. That conversion checks shallowly but precisely, naming the JSON path of the culprit (the cloud
behind us speaks another protocol and could not name an Anthropic field). What the canonical request cannot carry
is refused by name (errors.UnsupportedFeature: the dispatcher tries a deployment that can, else a 400); hints that
cannot change the answer (caching, context editing, capacity tiers) are left out and named to the client.
Thinking blocks of earlier turns go beside the messages (`ChatRequest.thinking`): the serving cloud hands back
those it can take (Converse its own signed thoughts, which the gateway showed under a seal of its own, seals.py);
the others are left out and named (Provider.dropped_thinking), never refused: they are the client's own blocks.
"""

from __future__ import annotations

from typing import Any

import orjson

from ... import errors
from ...canonical import AnthropicNative, ChatRequest
from ...seals import holds_sealed_thinking, sealed_thinking
from ..fields import NUMBER, is_kind, load_body, type_name

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "top_k", "metadata",
    "stream", "tools", "tool_choice", "thinking", "output_config", "output_format",
})
# Hints with no effect a client can observe on another cloud: caching, context editing (the other cloud sees the
# whole, unedited history a client without the feature sends), capacity tiers, placement, diagnostics. Left out
# for other clouds and named in x-skyrelay-dropped-params.
_HINTS = frozenset({
    "cache_control", "context_management", "service_tier", "inference_geo", "speed", "diagnostics",
    "user_profile_id", "workspace_id",
})
_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_SHOWN_THINKING = frozenset({"enabled", "adaptive"})  # the thinking types under which Anthropic shows thoughts
# Anthropic's effort levels -> OpenAI's reasoning_effort (what the other clouds map further).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def read_messages(body: bytes, beta: str | None = None, version: str | None = None,
                  beta_query: bool = False) -> ChatRequest:
    """A `POST /v1/messages` body -> a ChatRequest that carries the body (`anthropic`); canonical fields empty."""
    data = load_body(body)
    model = _require(data, "model", str)
    max_tokens = _require(data, "max_tokens", int)
    if max_tokens < 1:
        raise errors.InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
    messages = _require(data, "messages", list)
    if not messages:
        raise errors.InvalidRequest("messages: at least one message is required", param="messages")
    req = ChatRequest(model=model, messages=[], stream=_optional(data, "stream", bool) or False,
                      include_usage=True, max_tokens=max_tokens)  # Anthropic streams always report usage
    req.anthropic = AnthropicNative(data, beta, version, beta_query, convert=convert, sent=body, find_hints=_hints,
                                    sealed=_sealed(data, messages))
    return req


def parse_messages(body: bytes) -> ChatRequest:
    """A `POST /v1/messages` body -> ChatRequest with its canonical fields filled (what other clouds need)."""
    req = read_messages(body)
    return req.anthropic.canonical(req)


def convert(req: ChatRequest) -> None:
    """Fill the canonical fields of a request read by `read_messages` from its Anthropic body."""
    data = req.anthropic.body
    _check_fields(data, _FIELDS)
    common = _parse_common(data)
    req.messages, req.tools, req.tool_choice = common.messages, common.tools, common.tool_choice
    req.response_format, req.extra = common.response_format, common.extra
    req.thinking, req.show_thoughts = common.thinking, common.show_thoughts
    req.temperature = _optional(data, "temperature", NUMBER)
    req.top_p = _optional(data, "top_p", NUMBER)
    stops = _optional(data, "stop_sequences", list)
    if stops is not None:
        if not all(isinstance(s, str) for s in stops):
            raise errors.InvalidRequest("stop_sequences: must be an array of strings", param="stop_sequences")
        req.stop = stops or None
    top_k = _optional(data, "top_k", int)
    if top_k is not None:
        req.extra["top_k"] = top_k  # OpenAI-compatible servers (vLLM, SGLang) accept it; other providers decide
    metadata = _optional(data, "metadata", dict)
    if metadata:
        user = _optional(metadata, "user_id", str, "metadata.user_id")
        if user:
            req.extra["user"] = user


def parse_count_tokens(body: bytes) -> ChatRequest:
    """A `POST /v1/messages/count_tokens` body: the prompt part of a Messages request. Generation parameters
    (max_tokens, stream, ...) are accepted and ignored, so the same arguments work for both calls."""
    req = read_count_tokens(body)
    return req.anthropic.canonical(req)


def read_count_tokens(body: bytes, beta: str | None = None, version: str | None = None,
                      beta_query: bool = False) -> ChatRequest:
    """A count_tokens body kept as sent (`anthropic`), for a cloud that counts; canonical fields on demand (the
    gateway's own estimate)."""
    data = load_body(body)
    req = ChatRequest(model=_require(data, "model", str), messages=[])
    if not _require(data, "messages", list):
        raise errors.InvalidRequest("messages: at least one message is required", param="messages")
    req.anthropic = AnthropicNative(data, beta, version, beta_query, convert=_convert_count)
    return req


def _convert_count(req: ChatRequest) -> None:
    data = req.anthropic.body
    _check_fields(data, _FIELDS)
    common = _parse_common(data)
    req.messages, req.tools = common.messages, common.tools


def _hints(data: dict, body: bytes) -> tuple[str, ...]:
    """The hints a non-Anthropic cloud serves this request without. cache_control may sit on any block: a
    substring search of the body (C speed) finds it without walking the request."""
    # Most bodies name no top-level hint: a set test in C answers that before any Python-level walk.
    found = () if _HINTS.isdisjoint(data) else tuple(name for name in data if name in _HINTS)
    if "cache_control" not in found and b'"cache_control"' in body:
        found += ("cache_control",)
    return found


def _sealed(data: dict, messages: list) -> bool:
    """Whether the history holds thinking blocks the gateway signed. Only a conversation with thinking on can: the
    blocks come from answers to thinking requests, and Claude Code and the SDKs hand them back with thinking on."""
    return len(messages) > 1 and "thinking" in data and holds_sealed_thinking(messages)


def _check_fields(data: dict, allowed: frozenset) -> None:
    for name in data:
        if name not in allowed and name not in _HINTS:
            raise errors.UnsupportedFeature(
                f"{name}: this parameter is not supported on clouds other than Anthropic's",
                param=name)


def _parse_common(data: dict) -> ChatRequest:
    model = _require(data, "model", str)
    raw_messages = _require(data, "messages", list)
    if not raw_messages:
        raise errors.InvalidRequest("messages: at least one message is required", param="messages")
    messages: list[dict[str, Any]] = []
    thinking: dict[int, list[dict[str, Any]]] = {}
    system = data.get("system")
    if system is not None:
        content = _system_content(system)
        if content:
            messages.append({"role": "system", "content": content})
    for i, msg in enumerate(raw_messages):
        _convert_message(msg, f"messages[{i}]", messages, thinking)
    req = ChatRequest(model=model, messages=messages, thinking=thinking or None)
    tools = _optional(data, "tools", list)
    if tools:
        req.tools = [_convert_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = _optional(data, "tool_choice", dict)
    if choice is not None:
        req.tool_choice = _convert_tool_choice(choice, req.extra)
    output = _optional(data, "output_config", dict) or {}
    asked = _optional(data, "thinking", dict)
    effort = _reasoning_effort(asked, output.get("effort"))
    req.show_thoughts = asked is not None and asked.get("type") in _SHOWN_THINKING
    if effort is not None:
        req.extra["reasoning_effort"] = effort
    fmt = output.get("format")
    where = "output_config.format"
    if fmt is None and data.get("output_format") is not None:  # the earlier beta spelling
        fmt, where = data["output_format"], "output_format"
    if fmt is not None:
        req.response_format = _convert_output_format(fmt, where)
    return req


# --- messages --------------------------------------------------------------------------------------------------


def _convert_message(msg: Any, where: str, out: list[dict[str, Any]],
                     thinking: dict[int, list[dict[str, Any]]]) -> None:
    if not isinstance(msg, dict):
        raise errors.InvalidRequest(f"{where}: must be an object with 'role' and 'content'", param=where)
    role = msg.get("role")
    if role not in ("user", "assistant", "system"):
        raise errors.InvalidRequest(f"{where}.role: must be 'user' or 'assistant'; got {role!r}",
                                    param=f"{where}.role")
    content = msg.get("content")
    if not isinstance(content, (str, list)):
        raise errors.InvalidRequest(f"{where}.content: must be a string or an array of content blocks",
                                    param=f"{where}.content")
    if role == "user":
        _convert_user(content, where, out)
    elif role == "assistant":
        message, blocks = _convert_assistant(content, where)
        out.append(message)
        if blocks:
            thinking[len(out) - 1] = blocks
    else:
        out.append({"role": "system", "content": _text_of(content, f"{where}.content")})


def _convert_user(content: str | list, where: str, out: list[dict[str, Any]]) -> None:
    """Tool results become `tool` messages, which must directly follow the assistant's calls: emit them first."""
    if isinstance(content, str):
        out.append({"role": "user", "content": content})
        return
    if not content:
        raise errors.InvalidRequest(f"{where}.content: must contain at least one content block",
                                    param=f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = _block_type(block, at)
        if kind == "text":
            parts.append(_cached({"type": "text", "text": _block_text(block, at)}, block))
        elif kind == "image":
            parts.append(_cached(_convert_image(block, at), block))
        elif kind == "tool_result":
            out.append(_convert_tool_result(block, at))
        else:
            raise _unsupported_block(kind, at)
    if len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]:
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})


def _convert_assistant(content: str | list, where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The canonical assistant message, and the turn's thinking blocks (for ChatRequest.thinking)."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}, []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = _block_type(block, at)
        if kind == "text":
            texts.append(_block_text(block, at))
        elif kind == "tool_use":
            calls.append(_convert_tool_use(block, at))
        elif kind in _THINKING_BLOCKS:
            thinking.append(_history_thought(block))
        else:
            raise _unsupported_block(kind, at)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message, thinking


def _history_thought(block: dict) -> dict[str, Any]:
    """A thinking block of the history, canonical: another cloud's thought under the gateway's seal, or the block
    as Anthropic signed it (which only an Anthropic-family cloud could verify)."""
    if sealed_thinking(block):
        return {"type": "thought", "thinking": str(block.get("thinking") or ""), "signature": block["signature"]}
    return block


def _convert_tool_use(block: dict, at: str) -> dict[str, Any]:
    call_id = _field(block, "id", str, at)
    name = _field(block, "name", str, at)
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise errors.InvalidRequest(f"{at}.input: must be an object", param=f"{at}.input")
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def _convert_tool_result(block: dict, at: str) -> dict[str, Any]:
    call_id = _field(block, "tool_use_id", str, at)
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            part_at = f"{at}.content[{k}]"
            kind = _block_type(part, part_at)
            if kind != "text":
                raise errors.UnsupportedFeature(
                    f"{part_at}: '{kind}' blocks inside a tool_result are not supported on clouds other than Anthropic's; "
                    "send text (an image can go in a user text+image turn instead)", param=part_at)
            texts.append(_block_text(part, part_at))
        content = "\n".join(texts)
    elif not isinstance(content, str):
        raise errors.InvalidRequest(f"{at}.content: must be a string or an array of text blocks",
                                    param=f"{at}.content")
    if block.get("is_error") is True:
        content = f"Error: {content}" if content else "Error"  # the canonical tool message has no error flag
    if block.get("cache_control") is not None:  # a breakpoint rides on the result's (one) text part
        content = [_cached({"type": "text", "text": content}, block)]
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _convert_image(block: dict, at: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise errors.InvalidRequest(f"{at}.source: must be an object", param=f"{at}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or media_type not in _IMAGE_TYPES:
            raise errors.InvalidRequest(
                f"{at}.source.media_type: must be one of {', '.join(sorted(_IMAGE_TYPES))}; got {media_type!r}",
                param=f"{at}.source.media_type")
        data = _field(source, "data", str, f"{at}.source")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _field(source, "url", str, f"{at}.source")
        if not url.startswith(("https://", "http://")):
            raise errors.InvalidRequest(f"{at}.source.url: must be an http(s) URL", param=f"{at}.source.url")
    elif kind == "file":
        raise errors.UnsupportedFeature(
            f"{at}.source: file sources (the Files API) are not supported on clouds other than Anthropic's; "
            "send the image as base64 or a URL", param=f"{at}.source")
    else:
        raise errors.InvalidRequest(f"{at}.source.type: must be 'base64' or 'url'; got {kind!r}",
                                    param=f"{at}.source.type")
    return {"type": "image_url", "image_url": {"url": url}}


# --- tools -----------------------------------------------------------------------------------------------------


def _convert_tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise errors.InvalidRequest(f"{at}: must be an object", param=at)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise errors.UnsupportedFeature(
            f"{at}.type: the server tool '{kind}' is not supported on clouds other than Anthropic's; "
            "only client tools (name, description, input_schema) are", param=f"{at}.type")
    function: dict[str, Any] = {"name": _field(tool, "name", str, at)}
    description = tool.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise errors.InvalidRequest(f"{at}.description: must be a string", param=f"{at}.description")
        function["description"] = description
    function["parameters"] = _field(tool, "input_schema", dict, at)
    if tool.get("strict") is True:
        function["strict"] = True
    return _cached({"type": "function", "function": function}, tool)


def _convert_tool_choice(choice: dict, extra: dict[str, Any]) -> str | dict[str, Any]:
    kind = choice.get("type")
    if choice.get("disable_parallel_tool_use") is True:
        extra["parallel_tool_calls"] = False
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"type": "function", "function": {"name": _field(choice, "name", str, "tool_choice")}}
    raise errors.InvalidRequest(f"tool_choice.type: must be one of auto, any, tool, none; got {kind!r}",
                                param="tool_choice.type")


def _reasoning_effort(thinking: dict | None, effort: Any) -> str | None:
    """Thinking and effort as the other clouds' reasoning_effort: an effort level when one is given, else the
    thinking budget's size. Disabled (or no thinking and no effort) asks for nothing. 'adaptive' without an
    effort lets the model decide, which any cloud honours by answering as it does."""
    if effort is not None:
        if effort not in _EFFORTS:
            raise errors.InvalidRequest(f"output_config.effort: must be one of {', '.join(_EFFORTS)}; got {effort!r}",
                                        param="output_config.effort")
        if thinking is None or thinking.get("type") != "disabled":
            return _EFFORTS[effort]
    kind = None if thinking is None else thinking.get("type")
    if kind in (None, "disabled", "adaptive"):
        return None
    if kind != "enabled":
        raise errors.InvalidRequest(f"thinking.type: must be one of enabled, adaptive, disabled; got {kind!r}",
                                    param="thinking.type")
    budget = thinking.get("budget_tokens")
    if not is_kind(budget, int) or budget < 1024:
        raise errors.InvalidRequest("thinking.budget_tokens: must be an integer of at least 1024",
                                    param="thinking.budget_tokens")
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _convert_output_format(fmt: Any, where: str) -> dict[str, Any]:
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise errors.InvalidRequest(f"{where}.type: must be 'json_schema'", param=f"{where}.type")
    schema = _field(fmt, "schema", dict, where)
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


# --- small checks ----------------------------------------------------------------------------------------------


def _system_content(system: Any) -> str | list[dict[str, Any]]:
    """The system prompt as one text, or as text parts when it carries cache breakpoints (clouds that cache map
    them; the others take the parts' text)."""
    text = _text_of(system, "system")
    if not isinstance(system, list) or not any(isinstance(b, dict) and "cache_control" in b for b in system):
        return text
    return [_cached({"type": "text", "text": block["text"]}, block) for block in system if block["text"]]


def _cached(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """`part` with the block's cache_control breakpoint, if it has one: the canonical form keeps Anthropic's."""
    control = block.get("cache_control")
    if control is not None:
        part["cache_control"] = control
    return part


def _text_of(content: Any, where: str) -> str:
    """A string, or text blocks joined: the form system prompts and tool results come in."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise errors.InvalidRequest(f"{where}: must be a string or an array of text blocks", param=where)
    texts = []
    for j, block in enumerate(content):
        at = f"{where}[{j}]"
        if _block_type(block, at) != "text":
            raise errors.InvalidRequest(f"{at}.type: only 'text' blocks are allowed here", param=f"{at}.type")
        texts.append(_block_text(block, at))
    return "\n".join(texts)


def _block_type(block: Any, at: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise errors.InvalidRequest(f"{at}: must be a content block object with a 'type'", param=at)
    return block["type"]


def _block_text(block: dict, at: str) -> str:
    return _field(block, "text", str, at)


def _unsupported_block(kind: str, at: str) -> errors.UnsupportedFeature:
    return errors.UnsupportedFeature(
        f"{at}.type: content blocks of type '{kind}' are not supported on clouds other than Anthropic's "
        "(supported: text, image, tool_use, tool_result)", param=f"{at}.type")


def _field(obj: dict, name: str, kind: type, at: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind):
        what = "missing" if value is None else f"must be of type {type_name(kind)}"
        raise errors.InvalidRequest(f"{at}.{name}: {what}", param=f"{at}.{name}")
    return value


def _require(data: dict, name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        raise errors.InvalidRequest(f"{name}: Field required", param=name)
    if not is_kind(value, kind):
        raise errors.InvalidRequest(f"{name}: must be of type {type_name(kind)}", param=name)
    return value


def _optional(data: dict, name: str, kind: type | tuple, param: str | None = None) -> Any:
    value = data.get(name)
    if value is not None and not is_kind(value, kind):
        raise errors.InvalidRequest(f"{param or name}: must be of type {type_name(kind)}", param=param or name)
    return value
