"""Check OpenAI chat and embedding requests the way OpenAI does, and turn them into the neutral `ChatInput`.

The point is to catch a gateway's mistakes: unknown parameters, wrong types, out-of-range values, tool messages
that answer no tool call, assistant tool calls left unanswered. Messages and codes follow OpenAI's documented
error answers (`invalid_type`, `missing_required_parameter`, `invalid_value`, ...), status 400.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..generate import ChatInput, Message, ToolSpec
from ..model_limits import openai_embedding_size, openai_max_output
from .openai_wire import ApiError

_CHAT_PARAMS = {
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
}
_EMBEDDING_PARAMS = {"dimensions", "encoding_format", "input", "model", "user"}
# name -> (JSON type, minimum, maximum); all of these may also be null.
_TYPED = {
    "stream": ("boolean", None, None), "n": ("integer", 1, 128), "max_tokens": ("integer", 1, None),
    "max_completion_tokens": ("integer", 1, None), "temperature": ("number", 0, 2), "top_p": ("number", 0, 1),
    "presence_penalty": ("number", -2, 2), "frequency_penalty": ("number", -2, 2),
    "seed": ("integer", -2**63, 2**63 - 1),
    "logprobs": ("boolean", None, None), "top_logprobs": ("integer", 0, 20), "logit_bias": ("object", None, None),
    "user": ("string", None, None), "safety_identifier": ("string", None, None), "metadata": ("object", None, None),
    "prompt_cache_key": ("string", None, None), "store": ("boolean", None, None),
    "parallel_tool_calls": ("boolean", None, None), "stream_options": ("object", None, None),
    "response_format": ("object", None, None), "service_tier": ("string", None, None),
    "reasoning_effort": ("string", None, None), "verbosity": ("string", None, None),
    "modalities": ("array", None, None), "tools": ("array", None, None),
}
_PY_TYPES = {"boolean": bool, "integer": int, "number": (int, float), "string": str, "object": dict, "array": list}
_ARTICLE = {"integer": "an integer", "object": "an object", "array": "an array"}
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_PART_TYPES = ("text", "image_url", "input_audio", "refusal", "file")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_STOPS = 4
_MAX_TOOLS = 128  # also the most tool calls one assistant message may carry


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                            "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                            "sent was not valid JSON.)")
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name in ("integer", "number", "string", "object", "array"):
        if isinstance(value, _PY_TYPES[name]):
            return name
    return "unknown"


def _type_error(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(400, f"Invalid type for '{param}': expected {_ARTICLE.get(expected, 'a ' + expected)}, "
                         f"but got {_ARTICLE.get(_json_type(value), 'a ' + _json_type(value))} instead.",
                    param=param, code="invalid_type")


def _check_type(param: str, value: Any, expected: str, low: float | None = None, high: float | None = None):
    ok = isinstance(value, _PY_TYPES[expected]) and not (isinstance(value, bool) and expected != "boolean")
    if not ok:
        raise _type_error(param, expected, value)
    kind = "integer" if expected == "integer" else "decimal"
    if low is not None and value < low:
        raise ApiError(400, f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low}, but got "
                            f"{value} instead.", param=param, code=f"{kind}_below_min_value")
    if high is not None and value > high:
        raise ApiError(400, f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high}, but got "
                            f"{value} instead.", param=param, code=f"{kind}_above_max_value")


def _check_length(param: str, value: list[Any], limit: int) -> None:
    if len(value) > limit:
        raise ApiError(400, f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, but "
                            f"got an array with length {len(value)} instead.", param=param,
                       code="array_above_max_length")


def _missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _check_known(data: dict[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise ApiError(400, f"Unrecognized request argument supplied: {key}")


def check_model(data: dict[str, Any], required: bool = True) -> str:
    if "model" not in data or data["model"] is None:
        if not required:
            return ""
        raise _missing("model")
    _check_type("model", data["model"], "string")
    return data["model"]


class ChatCall:
    """A validated chat request: the neutral input plus what only the OpenAI rendering needs."""

    __slots__ = ("inp", "stream", "include_usage", "obfuscation")

    def __init__(self, inp: ChatInput, stream: bool, include_usage: bool, obfuscation: bool):
        self.inp = inp
        self.stream = stream
        self.include_usage = include_usage
        self.obfuscation = obfuscation


def chat_request(data: dict[str, Any], model_required: bool = True) -> ChatCall:
    """`model_required=False` for Azure, where the deployment in the URL names the model."""
    _check_known(data, _CHAT_PARAMS)
    model = check_model(data, model_required)
    if "messages" not in data or data["messages"] is None:
        raise _missing("messages")
    _check_type("messages", data["messages"], "array")
    if not data["messages"]:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                            "empty array instead.", param="messages", code="empty_array")
    for name, (kind, low, high) in _TYPED.items():
        if data.get(name) is not None:
            _check_type(name, data[name], kind, low, high)
    stream = bool(data.get("stream"))
    options = data.get("stream_options")
    if options is not None and not stream:
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       param="stream_options")
    options = options or {}
    tools = _tools(data.get("tools"))
    choice, forced = _tool_choice(data.get("tool_choice"), tools)
    limits = [data[k] for k in ("max_tokens", "max_completion_tokens") if data.get(k) is not None]
    inp = ChatInput(
        model=model, messages=_messages(data["messages"]), tools=tools, tool_choice=choice, forced_tool=forced,
        parallel_tool_calls=data.get("parallel_tool_calls") is not False, max_tokens=min(limits) if limits else None,
        stop=_stop(data.get("stop")), n=data.get("n") or 1,
    )
    return ChatCall(inp, stream, bool(options.get("include_usage")), options.get("include_obfuscation") is not False)


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _type_error("stop", "string", value)
    _check_length("stop", value, _MAX_STOPS)
    return value


def _messages(raw: list[Any]) -> list[Message]:
    out: list[Message] = []
    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant message still waiting for its answer
    answerable: set[str] = set()
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        _check_type(where, m, "object")
        role = m.get("role")
        if role is None:
            raise _missing(f"{where}.role")
        if role not in _ROLES:
            raise ApiError(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                                f"'function', 'tool', and 'developer'.", param=f"{where}.role", code="invalid_value")
        if pending and role != "tool":
            _unanswered(pending)
        text, images = _content(m.get("content"), where, role, m)
        if role == "assistant":
            calls = m.get("tool_calls") or []
            _check_type(f"{where}.tool_calls", calls, "array")
            _check_length(f"{where}.tool_calls", calls, _MAX_TOOLS)
            answerable = set()
            for j, call in enumerate(calls):
                _check_type(f"{where}.tool_calls[{j}]", call, "object")
                fn = call.get("function") if isinstance(call.get("function"), dict) else {}
                if not isinstance(call.get("id"), str):
                    raise _missing(f"{where}.tool_calls[{j}].id")
                pending[call["id"]] = i
                answerable.add(call["id"])
                text += f" {fn.get('name', '')}({fn.get('arguments', '')})"
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                raise _missing(f"{where}.tool_call_id")
            if call_id not in answerable:
                raise ApiError(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                    "preceeding message with 'tool_calls'.", param=f"messages.[{i}].role")
            pending.pop(call_id, None)
        else:
            answerable = set()
        out.append(Message({"developer": "system", "function": "tool"}.get(role, role), text, images))
    if pending:
        _unanswered(pending)
    return out


def _unanswered(pending: dict[str, int]) -> None:
    index = min(pending.values())
    raise ApiError(400, "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                        "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                        + ", ".join(pending), param=f"messages.[{index}].role")


def _content(content: Any, where: str, role: str, message: dict[str, Any]) -> tuple[str, int]:
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return "", 0
        if role == "assistant" and "content" in message:
            return "", 0
        raise _missing(f"{where}.content")
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise _type_error(f"{where}.content", "string", content)
    texts, images = [], 0
    for k, part in enumerate(content):
        at = f"{where}.content[{k}]"
        _check_type(at, part, "object")
        kind = part.get("type")
        if kind not in _PART_TYPES:
            raise ApiError(400, f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                                f"'input_audio', 'refusal', and 'file'.", param=f"{at}.type", code="invalid_value")
        if kind in ("text", "refusal"):
            value = part.get(kind)
            if not isinstance(value, str):
                raise _missing(f"{at}.{kind}")
            texts.append(value)
        elif kind == "image_url":
            if not isinstance(part.get("image_url"), dict) or not isinstance(part["image_url"].get("url"), str):
                raise _missing(f"{at}.image_url.url")
            images += 1
    return "\n".join(texts), images


def _tools(raw: Any) -> list[ToolSpec]:
    _check_length("tools", raw or [], _MAX_TOOLS)
    out = []
    for i, tool in enumerate(raw or []):
        where = f"tools[{i}]"
        _check_type(where, tool, "object")
        if tool.get("type", "function") != "function":
            if tool.get("type") == "custom":
                continue  # free-form custom tools: accepted, never called by this fake model
            raise ApiError(400, f"Invalid value: '{tool.get('type')}'. Supported values are: 'function' and "
                                f"'custom'.", param=f"{where}.type", code="invalid_value")
        fn = tool.get("function")
        if fn is None:
            raise _missing(f"{where}.function")
        _check_type(f"{where}.function", fn, "object")
        name = fn.get("name")
        if name is None:
            raise _missing(f"{where}.function.name")
        _check_type(f"{where}.function.name", name, "string")
        if not _TOOL_NAME.match(name):
            raise ApiError(400, f"Invalid '{where}.function.name': string does not match pattern. Expected a string "
                                f"that matches the pattern '^[a-zA-Z0-9_-]+$'.", param=f"{where}.function.name",
                           code="invalid_value")
        params = fn.get("parameters")
        if params is not None:
            _check_type(f"{where}.function.parameters", params, "object")
        description = fn.get("description") or ""
        _check_type(f"{where}.function.description", description, "string")
        out.append(ToolSpec(name, description, params))
    return out


def check_output_limit(data: dict[str, Any], model: str) -> None:
    """`max_tokens` / `max_completion_tokens` within the model's largest output (known models only)."""
    limit = openai_max_output(model)
    if limit is None:
        return
    for param in ("max_tokens", "max_completion_tokens"):
        asked = data.get(param)
        if asked is not None and asked > limit:
            raise ApiError(400, f"{param} is too large: {asked}. This model supports at most {limit} completion "
                                f"tokens, whereas you provided {asked}.", param=param, code="invalid_value")


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[str, str | None]:
    if raw is None:
        return "auto", None
    if not tools:
        raise ApiError(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                            "specified.", param="tool_choice")
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise ApiError(400, f"Invalid value: '{raw}'. Supported values are: 'none', 'auto', and 'required'.",
                           param="tool_choice", code="invalid_value")
        return raw, None
    _check_type("tool_choice", raw, "object")
    name = (raw.get("function") or {}).get("name") if isinstance(raw.get("function"), dict) else None
    if raw.get("type") != "function" or not isinstance(name, str):
        raise _missing("tool_choice.function.name")
    if name not in {t.name for t in tools}:
        raise ApiError(400, f"Invalid value for 'tool_choice': function '{name}' is not among the provided 'tools'.",
                       param="tool_choice", code="invalid_value")
    return "function", name


class EmbeddingCall:
    __slots__ = ("model", "inputs", "base64", "dimensions")

    def __init__(self, model: str, inputs: list[str | list[int]], base64: bool, dimensions: int | None):
        self.model = model
        self.inputs = inputs
        self.base64 = base64
        self.dimensions = dimensions


def embedding_request(data: dict[str, Any], model_required: bool = True) -> EmbeddingCall:
    _check_known(data, _EMBEDDING_PARAMS)
    model = check_model(data, model_required)
    if data.get("input") is None:
        raise _missing("input")
    raw = data["input"]
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(
            isinstance(t, int) and not isinstance(t, bool) for t in raw)):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(
            isinstance(t, list) and t and all(isinstance(x, int) for x in t) for t in raw):
        inputs = list(raw)
    else:
        inputs = []
    if not inputs or len(inputs) > 2048 or any(s == "" for s in inputs):
        raise ApiError(400, "'$.input' is invalid. Please check the API reference: "
                            "https://platform.openai.com/docs/api-reference.")
    fmt = data.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise ApiError(400, f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                       param="encoding_format", code="invalid_value")
    dims = data.get("dimensions")
    if dims is not None:
        _check_type("dimensions", dims, "integer", 1, None)
    if data.get("user") is not None:
        _check_type("user", data["user"], "string")
    return EmbeddingCall(model, inputs, fmt == "base64", dims)


def check_dimensions(call: EmbeddingCall, model: str, default_size: int) -> None:
    """`dimensions` may only shorten a vector: at most the model's native size (the cloud's size for a model
    OpenAI does not publish), and not at all for `text-embedding-ada-002`, as OpenAI answers."""
    if call.dimensions is None:
        return
    native = openai_embedding_size(model)
    if native == 0:
        raise ApiError(400, "This model does not support specifying dimensions.")
    _check_type("dimensions", call.dimensions, "integer", 1, native or default_size)
