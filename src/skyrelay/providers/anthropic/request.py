"""Canonical (OpenAI-shaped) chat request -> Anthropic Messages API request body. Pure: dict in, dict out.

Anthropic differs from the canonical shape in ways that matter: the system prompt is a top-level field, turns
must alternate user/assistant (consecutive same-role turns are merged), tool results are user-turn blocks, tool
inputs are JSON objects rather than JSON text, and `max_tokens` is required. Features Anthropic cannot honour are
refused with an error that names them; best-effort fields (extras.py: `seed`, `store`...) are left out.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatRequest
from ..content import image_url, read_data_url, split_data_url, tool_call_id
from ..extras import may_leave_out
from ..sampling import sampling_fields

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL_DEFAULT = "json_response"

# Anthropic-native fields a client may send through (e.g. the openai SDK's extra_body): forwarded as they are.
# `user` and `parallel_tool_calls` are mapped (below); other extra fields are left out or refused as extras.py says.
_PASSED_THROUGH = frozenset({"top_k", "thinking"})
_MAPPED = frozenset({"user", "parallel_tool_calls", "reasoning_effort"})
# OpenAI's reasoning effort -> a thinking budget (tokens), the inverse of the Anthropic protocol's reading of a
# budget as an effort (under 4096 low, under 16384 medium, above high). "none" asks for no thinking.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
_MIN_BUDGET = 1024  # Anthropic's floor for budget_tokens
HONOURED_EXTRAS = _PASSED_THROUGH | _MAPPED
_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def build_request(req: ChatRequest, deployment: str, model: str, *,
                  default_max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[dict[str, Any], str | None]:
    """The Messages API body, and the name of the forced tool that carries a JSON answer (None when not used)."""
    where = _Where(deployment)
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens or default_max_tokens}
    system, messages = convert_messages(req.messages, where, req.thinking)
    if system:
        body["system"] = system
    body["messages"] = messages
    body.update(sampling_fields(req, max_tokens=None, top_p="top_p", stop="stop_sequences"))
    _apply_extra(body, req.extra, where)
    _apply_effort(body, req, where)
    tools = convert_tools(req.tools, where) if req.tools else []
    tool_choice = convert_tool_choice(req.tool_choice, bool(tools), where)
    json_tool = None
    if req.response_format and req.response_format.get("type", "text") != "text":
        json_tool, tool, tool_choice = _json_answer_tool(req.response_format, tools, req.tool_choice, where)
        tools.append(tool)
    if tools:
        body["tools"] = tools
        if req.extra.get("parallel_tool_calls") is False:
            tool_choice = tool_choice or {"type": "auto"}
            if tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if req.stream:
        body["stream"] = True
    return body, json_tool


def hosted_request(req: ChatRequest, deployment: str, model: str, version: str, *, stream: bool,
                   default_max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[dict[str, Any], str | None]:
    """The Messages body for a cloud that hosts Claude and names the model in its URL (Vertex AI's rawPredict,
    Bedrock's InvokeModel): no `model`, the cloud's `anthropic_version`, `stream` only when asked."""
    body, json_tool = build_request(req, deployment, model, default_max_tokens=default_max_tokens)
    del body["model"]
    body["anthropic_version"] = version
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body, json_tool


class _Where:
    """Names the deployment in every refusal, so the client knows which upstream could not do what."""

    __slots__ = ("deployment",)

    def __init__(self, deployment: str):
        self.deployment = deployment

    def unsupported(self, feature: str, param: str | None = None, hint: str = "") -> errors.UnsupportedFeature:
        message = f"{feature} is not supported by deployment '{self.deployment}' (anthropic)"
        return errors.UnsupportedFeature(f"{message}; {hint}" if hint else message, param=param)


# --- messages ------------------------------------------------------------------------------------------------------


def convert_messages(messages: list[dict[str, Any]], where: _Where,
                     thinking: dict[int, list[dict[str, Any]]] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """(system, turns): system/developer texts hoisted to the top, the rest as alternating turns; an assistant
    turn opens with its thinking blocks (`thinking`, by message index), signatures intact."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role in ("system", "developer"):
            system += _system_blocks(msg.get("content"), i, where)
            continue
        if role == "user":
            blocks = _content_blocks(msg.get("content"), i, where)
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i, where)
            if thinking and i in thinking:  # Anthropic's own blocks: another cloud's thoughts it would refuse
                blocks = [*(b for b in thinking[i] if b.get("type") != "thought"), *blocks]
        elif role == "tool":
            role, blocks = "user", [_tool_result(msg, i, where)]
        else:
            raise where.unsupported(f"the '{role}' message role", f"messages[{i}].role",
                                    "send tool results as role 'tool' messages")
        if not blocks:
            continue  # Anthropic refuses empty turns; an empty message says nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return _compact_system(system), turns


def _compact_system(blocks: list[dict[str, Any]]) -> Any:
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"}:
        return blocks[0]["text"]  # the common case, in its simplest form
    return blocks


def _system_blocks(content: Any, i: int, where: _Where) -> list[dict[str, Any]]:
    blocks = _content_blocks(content, i, where)
    for block in blocks:
        if block["type"] != "text":
            raise where.unsupported("non-text content in a system message", f"messages[{i}].content")
    return blocks


def _content_blocks(content: Any, i: int, where: _Where) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        block = _content_part(part, f"messages[{i}].content[{j}]", where)
        if block is not None:
            blocks.append(block)
    return blocks


def _content_part(part: Any, param: str, where: _Where) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise errors.InvalidRequest(f"{param} must be an object", param=param)
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise errors.InvalidRequest(f"{param}.{kind} must be a string", param=param)
        if not text:
            return None
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url":
        block = _image_block(part.get("image_url"), param, where)
    elif kind == "file":
        block = _document_block(part.get("file"), param, where)
    else:
        raise where.unsupported(f"content of type '{kind}'", param)
    if "cache_control" in part:  # prompt caching hints some clients attach to parts: Anthropic's own field
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(image: Any, param: str, where: _Where) -> dict[str, Any]:
    url = image_url(image, param)
    if url.startswith("data:"):
        media_type, data = read_data_url(url, param)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise where.unsupported("an image URL that is neither data: nor http(s):", param)


def _document_block(file: Any, param: str, where: _Where) -> dict[str, Any]:
    url = file.get("file_data") if isinstance(file, dict) else None
    parts = split_data_url(url) if isinstance(url, str) else None
    if parts is None or parts[0] != "application/pdf":
        raise where.unsupported("a file part other than an inline PDF (file_data: data:application/pdf;base64,...)",
                                param)
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": parts[1]}}


def _assistant_blocks(msg: dict[str, Any], i: int, where: _Where) -> list[dict[str, Any]]:
    blocks = _content_blocks(msg.get("content"), i, where)
    for j, call in enumerate(msg.get("tool_calls") or ()):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise errors.InvalidRequest(f"{param} must have a function with a name", param=param)
        blocks.append({"type": "tool_use", "id": tool_use_id(call.get("id") or f"call_{i}_{j}"),
                       "name": function["name"], "input": _tool_input(function.get("arguments"), param)})
    return blocks


def tool_use_id(call_id: Any) -> str:
    """Anthropic accepts ids of [a-zA-Z0-9_-] only; ids minted by other clouds are mapped the same way on both
    sides (the call and its result), so they still pair up."""
    return _TOOL_NAME.sub("_", str(call_id))


def _tool_input(arguments: Any, param: str) -> dict[str, Any]:
    if arguments in (None, ""):
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise errors.InvalidRequest(f"{param}.function.arguments is not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest(f"{param}.function.arguments must be a JSON object", param=param)
    return value


def _tool_result(msg: dict[str, Any], i: int, where: _Where) -> dict[str, Any]:
    call_id = tool_call_id(msg, i)
    content = msg.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id(call_id)}
    if isinstance(content, list):
        block["content"] = _content_blocks(content, i, where)
    elif content:
        block["content"] = content
    return block


# --- tools ---------------------------------------------------------------------------------------------------------


def convert_tools(tools: list[dict[str, Any]], where: _Where) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise where.unsupported(f"tools of type '{tool.get('type') if isinstance(tool, dict) else tool}'",
                                    f"tools[{i}].type")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise errors.InvalidRequest(f"tools[{i}].function.name is required", param=f"tools[{i}].function")
        converted: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted["description"] = function["description"]
        if tool.get("cache_control") is not None:  # a breakpoint on the tool (kept from an Anthropic client)
            converted["cache_control"] = tool["cache_control"]
        out.append(converted)
    return out


def convert_tool_choice(choice: Any, have_tools: bool, where: _Where) -> dict[str, Any] | None:
    if choice is None or (not have_tools and choice in ("auto", "none")):
        return None
    if not have_tools:
        raise errors.InvalidRequest("'tool_choice' needs 'tools'", param="tool_choice")
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") == "function" and isinstance(name, str):
            return {"type": "tool", "name": name}
    raise where.unsupported(f"tool_choice {orjson.dumps(choice).decode()}", "tool_choice")


def _json_answer_tool(response_format: dict[str, Any], tools: list, tool_choice: Any, where: _Where):
    """JSON output through a forced tool: Anthropic then answers with a tool input that matches the schema.

    The response side turns that tool call back into the message content, so the client sees a JSON answer.
    """
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        name = _TOOL_NAME.sub("_", str(spec.get("name") or JSON_TOOL_DEFAULT))[:64]
        description = spec.get("description") or "Give the answer as this tool's input, which matches the schema."
    elif kind == "json_object":
        schema, name = {"type": "object", "additionalProperties": True}, JSON_TOOL_DEFAULT
        description = "Give the answer as a JSON object: this tool's input."
    else:
        raise where.unsupported(f"response_format type '{kind}'", "response_format")
    if tools or tool_choice not in (None, "auto", "none"):
        raise where.unsupported("response_format together with tools", "response_format",
                                "JSON answers are produced through a forced tool call there")
    if schema.get("type") != "object":
        raise where.unsupported("a response_format schema whose root is not an object", "response_format")
    tool = {"name": name, "description": description, "input_schema": schema}
    return name, tool, {"type": "tool", "name": name}


# --- other fields --------------------------------------------------------------------------------------------------


def _apply_extra(body: dict[str, Any], extra: dict[str, Any], where: _Where) -> None:
    for key, value in extra.items():
        if key in _PASSED_THROUGH:
            body[key] = value
        elif key not in _MAPPED and not may_leave_out(key, value):
            raise where.unsupported(f"'{key}'", key)
    user = extra.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}


def _apply_effort(body: dict[str, Any], req: ChatRequest, where: _Where) -> None:
    """reasoning_effort as extended thinking (unless the client sent Anthropic's own `thinking`). Anthropic's
    max_tokens counts the thinking too, as OpenAI's output cap counts reasoning: a budget that does not fit under
    the client's cap is shrunk to fit, and a cap too small for the smallest budget is refused."""
    effort = req.extra.get("reasoning_effort")
    if effort is None or effort == "none" or "thinking" in req.extra:
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise where.unsupported(f"reasoning_effort {effort!r}", "reasoning_effort")
    if req.max_tokens is None:
        body["max_tokens"] += budget  # the default cap is for the answer; the thinking comes on top
    elif req.max_tokens <= budget:
        budget = req.max_tokens - 1
        if budget < _MIN_BUDGET:
            raise where.unsupported(f"reasoning with an output cap of {req.max_tokens} tokens", "max_tokens",
                                    f"its thinking budget is at least {_MIN_BUDGET} tokens, below the cap")
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
