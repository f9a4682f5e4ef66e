"""A Responses API request (`POST /v1/responses`) -> a ChatRequest carrying the client's body (`responses`); its
canonical fields are filled from that body only when a deployment without a Responses API of its own serves it.

The Responses vocabulary is translated once, here, into the chat shapes every provider already speaks: `input`
items become messages (`function_call` items the assistant's tool calls, `function_call_output` items tool
messages), the flat tool shape becomes the nested one, `text.format` becomes `response_format`. A stored
conversation (`previous_response_id`, resolved by the gateway's store) goes in front of the input. What needs
state this gateway does not keep (`conversation`, item references) or a cloud-side tool (`web_search`, ...) is
refused with a 400 naming it. Reasoning items the gateway sealed (reasoning.py) become the thinking blocks of the
assistant turn they precede (`ChatRequest.thinking`), which the cloud that signed them hands back (Anthropic's
family its thinking blocks, a Converse deployment of the same model its reasoning); any other reasoning item cannot
be handed to the cloud and cannot change the answer: left out and named in `x-skyrelay-dropped-params`, as are the
sealed ones when another cloud serves (dispatch.py).
"""

from __future__ import annotations

from typing import Any

from ... import errors
from ...canonical import ChatRequest, ResponsesNative
from ..fields import NUMBER, is_kind, load_body, type_name
from .reasoning import ENCRYPTED_INCLUDE, unseal

# Request fields that need state this gateway does not keep, or run work in the background: refused.
_STATEFUL = {
    "conversation": "conversations need stored state, which this gateway does not keep; send the whole "
                    "conversation in 'input'",
    "background": "background responses are not supported by this gateway",
    "prompt": "stored prompt templates are not supported by this gateway",
}
# Fields copied into the canonical `extra` under the chat-completions name the providers know.
_EXTRA = {"parallel_tool_calls": "parallel_tool_calls", "prompt_cache_key": "prompt_cache_key", "user": "user",
          "metadata": "metadata", "safety_identifier": "safety_identifier", "service_tier": "service_tier"}
# Read here (or echoed in the answer) without a canonical twin of their own.
_KNOWN = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "text", "reasoning",
    "temperature", "top_p", "store", "stream", "stream_options", "include", "truncation", "top_logprobs",
    "max_tool_calls", "prompt_cache_retention", "client_metadata", "previous_response_id", *_STATEFUL, *_EXTRA,
})
# A namespaced tool (a `namespace` tool group's member) reaches the clouds, which have no namespaces, as one
# function named `<namespace>__<name>`; answers split the name back (response.py).
NAMESPACE_SEPARATOR = "__"
# `include` values this gateway can satisfy.
_HARMLESS_INCLUDES = frozenset({ENCRYPTED_INCLUDE})
_MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})


def read_responses(body: bytes) -> ChatRequest:
    """The request with only what routing needs read (model, stream, the output cap); the body rides along."""
    data = load_body(body)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise errors.InvalidRequest("missing required parameter: 'model'", param="model")
    max_tokens = _optional(data, "max_output_tokens", int)
    if max_tokens is not None and max_tokens < 1:
        raise errors.InvalidRequest("max_output_tokens must be at least 1", param="max_output_tokens")
    _optional(data, "previous_response_id", str)
    _optional(data, "store", bool)
    inputs = data.get("input")
    if inputs is not None and not isinstance(inputs, (str, list)):  # the rest is checked where it is read
        raise errors.InvalidRequest("'input' must be a string or a non-empty array of input items", param="input")
    req = ChatRequest(model=model, messages=[], stream=_optional(data, "stream", bool) or False, include_usage=True,
                      max_tokens=max_tokens)
    req.responses = ResponsesNative(data, convert=convert)
    return req


def parse_responses(body: bytes) -> tuple[ChatRequest, dict[str, Any], tuple[str, ...]]:
    """The canonical request, the parsed body (echoed in the answer) and the fields left out at this protocol's
    level (named in x-skyrelay-dropped-params beside what the serving cloud left out)."""
    req = read_responses(body)
    req.responses.canonical(req)
    return req, req.responses.body, req.responses.dropped


def convert(req: ChatRequest) -> None:
    """Fill the canonical fields of a request read by `read_responses` from its body."""
    native = req.responses
    data = native.body
    for key, value in data.items():
        if value is None:
            continue
        if key in _STATEFUL and value is not False:
            raise errors.InvalidRequest(_STATEFUL[key], param=key)
        if key not in _KNOWN:
            raise errors.InvalidRequest(f"Unknown parameter: '{key}'", param=key, code="unknown_parameter")
    dropped: list[str] = []
    anthropic_only: list[str] = []
    thinking: dict[int, list[dict[str, Any]]] = {}
    messages = []
    instructions = _optional(data, "instructions", str)
    if instructions:
        messages.append({"role": "system", "content": instructions})
    offset = len(messages)
    for index, blocks in _input_messages(native.full_input(), dropped, messages).items():
        thinking[index + offset] = blocks
    extra = {name: data[key] for key, name in _EXTRA.items() if data.get(key) is not None}
    reasoning = _optional(data, "reasoning", dict)
    if reasoning:
        effort = _optional(reasoning, "effort", str, "reasoning.effort")
        if effort is not None:
            extra["reasoning_effort"] = effort
        if reasoning.get("summary") is not None or reasoning.get("generate_summary") is not None:
            req.show_thoughts = True
            anthropic_only.append("reasoning.summary")  # a summary of the reasoning, never the answer itself
    response_format = None
    text = _optional(data, "text", dict)
    if text:
        response_format = _response_format(text.get("format"))
        if text.get("verbosity") is not None:
            extra["verbosity"] = text["verbosity"]
    if data.get("client_metadata") is not None:
        dropped.append("client_metadata")  # the client's own telemetry ids, for OpenAI's logs: not the answer's
    _check_leftovers(data, dropped)
    req.messages = messages
    req.temperature = _optional(data, "temperature", NUMBER)
    req.top_p = _optional(data, "top_p", NUMBER)
    req.tools = _tools(data.get("tools"))
    req.tool_choice = _tool_choice(data.get("tool_choice"))
    req.response_format = response_format
    req.extra = extra
    req.thinking = thinking or None
    if thinking:
        anthropic_only.append("input.reasoning")
    native.dropped = tuple(dropped)
    native.anthropic_only = tuple(anthropic_only)


def _check_leftovers(data: dict, dropped: list[str]) -> None:
    include = _optional(data, "include", list)
    if include and any(value not in _HARMLESS_INCLUDES for value in include):
        dropped.append("include")
    if data.get("truncation") == "auto":
        dropped.append("truncation")  # only matters past the context window, where the cloud answers an error
    top_logprobs = _optional(data, "top_logprobs", int)
    if top_logprobs:
        raise errors.UnsupportedFeature("top_logprobs is not supported on /v1/responses by this gateway",
                                        param="top_logprobs")


def _input_messages(value: Any, dropped: list[str], out: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The input items as canonical messages, appended to `out`; returns the thinking blocks of the assistant
    messages among them, by index in this input's messages."""
    if value is None:
        raise errors.InvalidRequest("missing required parameter: 'input'", param="input")
    if isinstance(value, str):
        out.append({"role": "user", "content": value})
        return {}
    if not isinstance(value, list) or not value:
        raise errors.InvalidRequest("'input' must be a string or a non-empty array of input items", param="input")
    messages: list[dict[str, Any]] = []
    thinking: dict[int, list[dict[str, Any]]] = {}
    pending: list[dict[str, Any]] = []  # sealed thinking waiting for the assistant turn it belongs to
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise errors.InvalidRequest(f"input[{i}] must be an object", param=f"input[{i}]")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, i))
        elif kind == "function_call":
            name = _field(item, "name", i)
            if isinstance(item.get("namespace"), str):
                name = item["namespace"] + NAMESPACE_SEPARATOR + name
            call = {"id": _field(item, "call_id", i), "type": "function",
                    "function": {"name": name, "arguments": _field(item, "arguments", i)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # one assistant turn may call several tools
            elif last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": _field(item, "call_id", i),
                             "content": _tool_output(item.get("output"), i)})
        elif kind == "reasoning":
            blocks = unseal(item.get("encrypted_content"))
            if blocks is not None:
                pending += blocks
            elif "input.reasoning" not in dropped:
                dropped.append("input.reasoning")  # not ours to hand back (another cloud's, or no content)
        elif kind == "item_reference":
            raise errors.InvalidRequest("item references need stored responses, which this gateway does not keep; "
                                        "send the items themselves", param=f"input[{i}]")
        else:
            raise errors.UnsupportedFeature(f"input[{i}]: input items of type '{kind}' are not supported by this "
                                            f"gateway", param=f"input[{i}].type")
        if pending and kind != "reasoning" and messages[-1]["role"] == "assistant":
            thinking.setdefault(len(messages) - 1, []).extend(pending)
            pending = []
    if not messages:
        raise errors.InvalidRequest("'input' holds no message to answer", param="input")
    if pending and "input.reasoning" not in dropped:
        dropped.append("input.reasoning")  # thoughts no assistant turn followed: nothing to hand them back with
    out += messages
    return thinking


def _message(item: dict, i: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in _MESSAGE_ROLES:
        raise errors.InvalidRequest(f"input[{i}].role must be one of {', '.join(sorted(_MESSAGE_ROLES))}; "
                                    f"got {role!r}", param=f"input[{i}].role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise errors.InvalidRequest(f"input[{i}].content must be a string or an array of content parts",
                                    param=f"input[{i}].content")
    parts = [_part(part, i, j) for j, part in enumerate(content)]
    if role != "user" and all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}  # every cloud takes plain text there
    return {"role": role, "content": parts}


def _part(part: Any, i: int, j: int) -> dict[str, Any]:
    where = f"input[{i}].content[{j}]"
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise errors.InvalidRequest(f"{where} must be an object with a string 'type'", param=where)
    kind = part["type"]
    if kind in _TEXT_PARTS or kind == "refusal":
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise errors.InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise errors.UnsupportedFeature(f"{where}: images must be given as 'image_url' (a URL or a data: URL); "
                                            f"file ids need the Files API, which this gateway does not have",
                                            param=f"{where}.image_url")
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise errors.UnsupportedFeature(f"{where}: content parts of type '{kind}' are not supported by this gateway",
                                    param=f"{where}.type")


def _tool_output(output: Any, i: int) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return [_part(part, i, j) for j, part in enumerate(output)]
    raise errors.InvalidRequest(f"input[{i}].output must be a string or an array of content parts",
                                param=f"input[{i}].output")


def _field(item: dict, name: str, i: int) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise errors.InvalidRequest(f"input[{i}].{name} must be a string", param=f"input[{i}].{name}")
    return value


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise errors.InvalidRequest("'tools' must be an array", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            group = tool.get("tools")
            prefix = tool.get("name")
            if not isinstance(prefix, str) or not prefix or not isinstance(group, list):
                raise errors.InvalidRequest(f"tools[{i}] of type namespace needs a 'name' and a 'tools' array",
                                            param=f"tools[{i}]")
            for j, member in enumerate(group):
                out.append(_function_tool(member, f"tools[{i}].tools[{j}]", prefix + NAMESPACE_SEPARATOR))
        else:
            out.append(_function_tool(tool, f"tools[{i}]", ""))
    return out


def _function_tool(tool: Any, where: str, prefix: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise errors.InvalidRequest(f"{where} must be an object with a string 'type'", param=where)
    if tool["type"] != "function":
        # A tool the cloud runs itself (web_search, file_search, code_interpreter, mcp, ...): only a deployment
        # with its own Responses API runs it (the request fails over to one); answering without it would change
        # the answer.
        raise errors.UnsupportedFeature(f"{where}: the built-in tool '{tool['type']}' runs only on a deployment "
                                        f"with its own Responses API (kind openai or azure); the clouds behind "
                                        f"this gateway's translation take function tools only",
                                        param=f"{where}.type")
    name = tool.get("name")
    if not isinstance(name, str):
        raise errors.InvalidRequest(f"{where}.name must be a string", param=f"{where}.name")
    function: dict[str, Any] = {"name": prefix + name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None or (isinstance(choice, str) and choice in _TOOL_CHOICES):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        if not isinstance(choice.get("name"), str):
            raise errors.InvalidRequest("tool_choice.name must be a string", param="tool_choice.name")
        name = choice["name"]
        if isinstance(choice.get("namespace"), str):
            name = choice["namespace"] + NAMESPACE_SEPARATOR + name
        return {"type": "function", "function": {"name": name}}
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        raise errors.UnsupportedFeature(f"tool_choice of type '{choice['type']}' is not supported by this gateway",
                                        param="tool_choice")
    raise errors.InvalidRequest("'tool_choice' must be 'auto', 'none', 'required' or a function choice",
                                param="tool_choice")


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
            raise errors.InvalidRequest("text.format of type json_schema needs a 'name' and a 'schema' object",
                                        param="text.format")
        schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if fmt.get(key) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise errors.InvalidRequest("text.format.type must be 'text', 'json_object' or 'json_schema'",
                                param="text.format.type")


def _optional(data: dict, name: str, kind: type | tuple, param: str | None = None) -> Any:
    value = data.get(name)
    if value is not None and not is_kind(value, kind):
        raise errors.InvalidRequest(f"'{param or name}' must be of type {type_name(kind)}", param=param or name)
    return value
