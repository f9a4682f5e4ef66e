"""Check a Responses API request (`POST /v1/responses`) the way OpenAI does, and turn it into the neutral input.

Written from OpenAI's API reference (CreateResponse, the input item and tool schemas): unknown parameters, wrong
types, function-call outputs that answer no call, and reasoning items whose `encrypted_content` this cloud did not
produce are 400s in OpenAI's error shape. `previous_response_id` prepends the stored conversation (responses_store),
so the reply depends on the whole conversation, as the real one does.
"""

from __future__ import annotations

from typing import Any

from ..generate import ChatInput, Message, ToolSpec
from .openai_validate import _check_type, _missing, _type_error
from .openai_wire import ApiError

_PARAMS = {
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream",
    "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    "client_metadata",
}
_TYPED = {  # name -> (JSON type, minimum, maximum); each may also be null
    "instructions": ("string", None, None), "max_output_tokens": ("integer", 16, None),
    "max_tool_calls": ("integer", 1, None), "metadata": ("object", None, None),
    "parallel_tool_calls": ("boolean", None, None), "previous_response_id": ("string", None, None),
    "prompt_cache_key": ("string", None, None), "reasoning": ("object", None, None),
    "safety_identifier": ("string", None, None), "store": ("boolean", None, None), "stream": ("boolean", None, None),
    "stream_options": ("object", None, None), "temperature": ("number", 0, 2), "text": ("object", None, None),
    "tools": ("array", None, None), "top_logprobs": ("integer", 0, 20), "top_p": ("number", 0, 1),
    "user": ("string", None, None), "include": ("array", None, None), "background": ("boolean", None, None),
}
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal", "summary_text": "text"}
# Web search, OpenAI's built-in tool: this fake model searches once for the user's latest message (a
# `web_search_call` item before its answer) when offered it and not told `tool_choice: none`.
WEB_SEARCH_TOOLS = {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
# Built-in tools OpenAI runs itself: accepted; of those, only web search is ever called by this fake model.
_HOSTED_TOOLS = {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
                 "file_search", "code_interpreter", "image_generation", "mcp", "computer_use_preview", "local_shell",
                 "shell", "apply_patch", "custom", "tool_search"}
# Output items of those tools, sent back as history: accepted as context without text.
_CONTEXT_ITEMS = {"web_search_call", "file_search_call", "image_generation_call", "code_interpreter_call",
                  "local_shell_call", "local_shell_call_output", "custom_tool_call", "custom_tool_call_output",
                  "mcp_call", "mcp_list_tools", "shell_call", "shell_call_output", "apply_patch_call",
                  "apply_patch_call_output", "compaction"}
_INCLUDES = {"reasoning.encrypted_content", "message.output_text.logprobs", "web_search_call.action.sources",
             "code_interpreter_call.outputs", "computer_call_output.output.image_url",
             "file_search_call.results", "message.input_image.image_url", "web_search_call.results"}
_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}


class ResponsesCall:
    """A validated request: the neutral input plus what only the Responses rendering needs."""

    __slots__ = ("inp", "body", "items", "stream", "store", "reasoning", "summary", "schema", "json_mode",
                 "namespaces", "search", "sources")

    def __init__(self, inp: ChatInput, body: dict[str, Any], items: list[dict[str, Any]]):
        self.inp = inp
        self.body = body  # the request as sent (echoed in the Response)
        self.items = items  # the whole conversation so far: stored items of previous responses, then this input
        self.stream = body.get("stream") is True
        self.store = body.get("store") is not False  # OpenAI stores unless told not to
        reasoning = body.get("reasoning") or {}
        self.reasoning = reasoning.get("effort") not in (None, "none")  # a reasoning model thinks first
        self.summary = self.reasoning and reasoning.get("summary") is not None
        self.schema: Any = None  # text.format json_schema's schema
        self.json_mode = False
        self.namespaces: dict[str, str] = {}  # flat function name -> its namespace
        self.search: str | None = None  # the web search query, when the model searches before answering
        self.sources = "web_search_call.action.sources" in (body.get("include") or ())


def responses_request(data: dict[str, Any], history: list[dict[str, Any]], check_reasoning,
                      model_required: bool = True) -> ResponsesCall:
    """`history`: the stored items `previous_response_id` names (resolved by the caller); `check_reasoning(item,
    where)` raises for a reasoning item this cloud did not produce."""
    for key in data:
        if key not in _PARAMS:
            raise ApiError(400, f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    model = data.get("model")
    if model is None and model_required:
        raise _missing("model")
    if model is not None:
        _check_type("model", model, "string")
    for name, (kind, low, high) in _TYPED.items():
        if data.get(name) is not None:
            _check_type(name, data[name], kind, low, high)
    if data.get("stream_options") is not None and data.get("stream") is not True:
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       param="stream_options")
    for value in data.get("include") or ():
        if value not in _INCLUDES:
            raise ApiError(400, f"Invalid value: '{value}'.", param="include", code="invalid_value")
    _check_reasoning_param(data.get("reasoning"))
    if data.get("conversation") is not None and data.get("previous_response_id") is not None:
        raise ApiError(400, "Mutually exclusive parameters: 'previous_response_id' and 'conversation'.",
                       param="previous_response_id")
    items = history + _input_items(data.get("input"))
    tools, namespaces = _tools(data.get("tools"))
    choice, forced = _tool_choice(data.get("tool_choice"), tools)
    messages = _messages(items, check_reasoning)
    if data.get("instructions"):
        messages.insert(0, Message("system", data["instructions"]))
    if not messages:
        raise ApiError(400, "Invalid 'input': the conversation holds no message.", param="input")
    inp = ChatInput(model=model or "", messages=messages, tools=tools, tool_choice=choice, forced_tool=forced,
                    parallel_tool_calls=data.get("parallel_tool_calls") is not False,
                    max_tokens=data.get("max_output_tokens"))
    call = ResponsesCall(inp, data, items)
    call.namespaces = namespaces
    call.search = _search_query(data, items)
    _text_format(call, data.get("text"))
    return call


def _search_query(data: dict[str, Any], items: list[dict[str, Any]]) -> str | None:
    """The user's latest text, when web search is offered and the latest turn is the user's (a question, not a
    tool's output the model now reads)."""
    tools = data.get("tools") or ()
    if data.get("tool_choice") == "none" or not any(t.get("type") in WEB_SEARCH_TOOLS for t in tools):
        return None
    last = items[-1] if items else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (content or "")[:200] or None


def _check_reasoning_param(reasoning: Any) -> None:
    if reasoning is None:
        return
    effort = reasoning.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise ApiError(400, f"Invalid value: '{effort}'. Supported values are: 'none', 'minimal', 'low', 'medium', "
                            f"'high' and 'xhigh'.", param="reasoning.effort", code="invalid_value")
    summary = reasoning.get("summary")
    if summary is not None and summary not in ("auto", "concise", "detailed"):
        raise ApiError(400, f"Invalid value: '{summary}'. Supported values are: 'auto', 'concise', and 'detailed'.",
                       param="reasoning.summary", code="invalid_value")


def _input_items(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise _type_error("input", "string", value)
    for i, item in enumerate(value):
        _check_type(f"input[{i}]", item, "object")
    return list(value)


def _messages(items: list[dict[str, Any]], check_reasoning) -> list[Message]:
    out: list[Message] = []
    calls: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise ApiError(400, f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                                    f"'developer', and 'user'.", param=f"{where}.role", code="invalid_value")
            text, images = _content(item.get("content"), f"{where}.content")
            out.append(Message(_ROLES[role], text, images))
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    raise _missing(f"{where}.{name}")
            calls.add(item["call_id"])
            text = f" {item['name']}({item['arguments']})"
            if out and out[-1].role == "assistant":
                out[-1].text += text  # one assistant turn calling several tools, as chat's tool_calls list
            else:
                out.append(Message("assistant", text))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _missing(f"{where}.call_id")
            if call_id not in calls:
                raise ApiError(400, f"No tool call found for function call output with call_id {call_id}.",
                               param="input")
            output = item.get("output")
            text = output if isinstance(output, str) else _content(output, f"{where}.output")[0]
            out.append(Message("tool", text))
        elif kind == "reasoning":
            check_reasoning(item, where)
        elif kind in _CONTEXT_ITEMS:
            if kind.endswith("_call"):
                calls.add(str(item.get("call_id")))
        else:
            raise ApiError(400, f"Invalid value: '{kind}'.", param=f"{where}.type", code="invalid_value")
    return out


def _content(content: Any, where: str) -> tuple[str, int]:
    if content is None:
        raise _missing(where)
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise _type_error(where, "string", content)
    texts, images = [], 0
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        _check_type(at, part, "object")
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            value = part.get(_TEXT_PARTS[kind])
            if not isinstance(value, str):
                raise _missing(f"{at}.{_TEXT_PARTS[kind]}")
            texts.append(value)
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str) and not isinstance(part.get("file_id"), str):
                raise _missing(f"{at}.image_url")
            images += 1
        elif kind != "input_file":
            raise ApiError(400, f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', "
                                f"'output_text', 'refusal', 'input_file'.", param=f"{at}.type", code="invalid_value")
    return "\n".join(texts), images


def _tools(raw: Any) -> tuple[list[ToolSpec], dict[str, str]]:
    out: list[ToolSpec] = []
    namespaces: dict[str, str] = {}
    for i, tool in enumerate(raw or ()):
        where = f"tools[{i}]"
        _check_type(where, tool, "object")
        kind = tool.get("type")
        if kind == "namespace":
            if not isinstance(tool.get("name"), str):
                raise _missing(f"{where}.name")
            _check_type(f"{where}.tools", tool.get("tools"), "array")
            for j, member in enumerate(tool["tools"]):
                spec = _function(member, f"{where}.tools[{j}]")
                out.append(spec)
                namespaces[spec.name] = tool["name"]
        elif kind == "function":
            out.append(_function(tool, where))
        elif kind not in _HOSTED_TOOLS:
            raise ApiError(400, f"Invalid value: '{kind}'.", param=f"{where}.type", code="invalid_value")
    return out, namespaces


def _function(tool: Any, where: str) -> ToolSpec:
    _check_type(where, tool, "object")
    if tool.get("type") != "function":
        raise ApiError(400, f"Invalid value: '{tool.get('type')}'.", param=f"{where}.type", code="invalid_value")
    name = tool.get("name")
    if name is None:
        raise _missing(f"{where}.name")
    _check_type(f"{where}.name", name, "string")
    params = tool.get("parameters")
    if params is not None:
        _check_type(f"{where}.parameters", params, "object")
    description = tool.get("description") or ""
    _check_type(f"{where}.description", description, "string")
    return ToolSpec(name, description, params)


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[str, str | None]:
    if raw is None:
        return "auto", None
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise ApiError(400, f"Invalid value: '{raw}'. Supported values are: 'none', 'auto', and 'required'.",
                           param="tool_choice", code="invalid_value")
        return raw, None
    _check_type("tool_choice", raw, "object")
    if raw.get("type") != "function":
        return "auto", None  # a hosted tool or allowed_tools: this fake model calls none of those
    name = raw.get("name")
    if not isinstance(name, str):
        raise _missing("tool_choice.name")
    if name not in {t.name for t in tools}:
        raise ApiError(400, f"Tool choice '{name}' not found in 'tools' parameter.", param="tool_choice")
    return "function", name


def _text_format(call: ResponsesCall, text: Any) -> None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return
    _check_type("text.format", fmt, "object")
    kind = fmt.get("type")
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise _missing("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise _missing("text.format.schema")
        call.schema = fmt["schema"]
    elif kind == "json_object":
        call.json_mode = True
        if not any("json" in m.text.lower() for m in call.inp.messages):
            raise ApiError(400, "Response input messages must contain the word 'json' in some form to use "
                                "'text.format' of type 'json_object'.", param="input")
    elif kind != "text":
        raise ApiError(400, f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and "
                            f"'json_schema'.", param="text.format.type", code="invalid_value")
