"""Canonical chat request -> a Gemini `generateContent` body (the same body for the Gemini API and Vertex AI).

Pure: dict in, dict out; a feature Gemini cannot honour raises `errors.InvalidRequest` naming it and the
deployment, never silently dropped.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ... import errors
from ...canonical import ChatRequest
from ..extras import may_leave_out
from ..sampling import sampling_fields
from .callids import signature_of
from .parts import content_parts, text_of
from .schema import has_no_parameters, to_gemini_schema

# OpenAI fields with a Gemini generationConfig twin: (Gemini name, accepts floats). These, `n` and
# `reasoning_effort` are mapped; other extra fields are left out or refused as extras.py says.
_CONFIG_EXTRAS = {
    "seed": ("seed", False), "top_k": ("topK", False),
    "presence_penalty": ("presencePenalty", True), "frequency_penalty": ("frequencyPenalty", True),
}
HONOURED_EXTRAS = frozenset({"n", "reasoning_effort", *_CONFIG_EXTRAS})
# OpenAI's reasoning_effort -> Gemini 2.x thinking budgets (tokens) and Gemini 3 (and later) thinking levels.
_THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "XHIGH"}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# Gemini 3 and later refuse a history whose function calls lack a thought signature; this documented value
# lets a history that came from elsewhere (another cloud, an old client) through.
_SKIP_SIGNATURE = "skip_thought_signature_validator"
_GEMINI_MAJOR = re.compile(r"(?:^|/)gemini-(\d+)")


def build_request(req: ChatRequest, deployment: str, kind: str, model: str) -> dict[str, Any]:
    """The generateContent body for a canonical request."""
    where = f"deployment '{deployment}' ({kind})"
    system, contents = build_contents(req.messages, where, kind, gemini3_or_later(model))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        tools, tool_config = build_tools(req.tools, req.tool_choice, where)
        body["tools"] = tools
        if tool_config:
            body["toolConfig"] = tool_config
    elif req.tool_choice not in (None, "none", "auto"):
        raise errors.InvalidRequest("'tool_choice' needs 'tools'", param="tool_choice")
    config = generation_config(req, where, model)
    if config:
        body["generationConfig"] = config
    return body


def gemini3_or_later(model: str) -> bool:
    """Gemini 3 and later want thought signatures back and think by level rather than by budget."""
    match = _GEMINI_MAJOR.search(model)
    return match is not None and int(match.group(1)) >= 3


# --- messages ------------------------------------------------------------------------------------------------------


def build_contents(messages: list[dict[str, Any]], where: str, kind: str = "gemini",
                   signatures: bool = False) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents): roles user/model, consecutive same-role turns merged."""
    system: list[dict] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}  # tool-call id -> function name, to name each tool result
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role in ("system", "developer"):
            text = text_of(msg.get("content"), where, f"messages[{i}].content")
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            turn_role, parts = "user", content_parts(msg.get("content"), where, f"messages[{i}].content", kind)
        elif role == "assistant":
            turn_role, parts = "model", _assistant_parts(msg, i, where, call_names, signatures)
        elif role == "tool":
            turn_role, parts = "user", [_tool_result(msg, i, call_names)]
        elif role == "function":  # the legacy form of a tool result: the function is named on the message
            turn_role, parts = "user", [_function_response(str(msg.get("name") or ""), msg.get("content"), i)]
        else:
            raise errors.UnsupportedFeature(f"messages[{i}].role {role!r} is not supported by {where}",
                                        param=f"messages[{i}].role")
        if not parts:
            continue  # Gemini refuses turns without parts (e.g. an assistant message with empty content)
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    return system, contents


def _assistant_parts(msg: dict, i: int, where: str, call_names: dict[str, str], signatures: bool) -> list[dict]:
    parts: list[dict] = []
    text = text_of(msg.get("content"), where, f"messages[{i}].content")
    if text:
        parts.append({"text": text})
    for j, call in enumerate(msg.get("tool_calls") or ()):
        function = call.get("function") or {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise errors.InvalidRequest(f"messages[{i}].tool_calls[{j}].function.name is missing",
                                        param=f"messages[{i}].tool_calls")
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": _arguments(function.get("arguments"), i, j)}}
        signature = signature_of(call_id) if isinstance(call_id, str) else None
        if signature:
            part["thoughtSignature"] = signature
        elif signatures and j == 0:  # only the first call of a turn carries one
            part["thoughtSignature"] = _SKIP_SIGNATURE
        parts.append(part)
    return parts


def _arguments(arguments: Any, i: int, j: int) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise errors.InvalidRequest(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object",
                                    param=f"messages[{i}].tool_calls")
    return value


def _tool_result(msg: dict, i: int, call_names: dict[str, str]) -> dict:
    call_id = msg.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise errors.InvalidRequest(
            f"messages[{i}].tool_call_id {call_id!r} matches no tool call of an earlier assistant message",
            param=f"messages[{i}].tool_call_id")
    return _function_response(name, msg.get("content"), i)


def _function_response(name: str, content: Any, i: int) -> dict:
    if not name:
        raise errors.InvalidRequest(f"messages[{i}].name is missing", param=f"messages[{i}].name")
    text = text_of(content, "", f"messages[{i}].content")
    try:
        value = orjson.loads(text) if text else ""
    except orjson.JSONDecodeError:
        value = text
    # Gemini wants an object; anything else is wrapped so the model still sees it whole.
    response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


# --- tools ---------------------------------------------------------------------------------------------------------


def build_tools(tools: list[dict[str, Any]], tool_choice: Any, where: str) -> tuple[list[dict], dict | None]:
    declarations = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise errors.UnsupportedFeature(f"tools[{i}] of type {kind!r} is not supported by {where}; only functions",
                                        param=f"tools[{i}]")
        declarations.append(function_declaration(function, i))
    mode, allowed = _tool_mode(tool_choice, where)
    if allowed is not None and mode == "AUTO":
        # OpenAI's allowed_tools in auto mode: Gemini only restricts names in ANY mode, so offer only those.
        declarations = [d for d in declarations if d["name"] in allowed]
        allowed = None
    config: dict[str, Any] | None = None
    if mode is not None:
        calling: dict[str, Any] = {"mode": mode}
        if allowed:
            calling["allowedFunctionNames"] = allowed
        config = {"functionCallingConfig": calling}
    return [{"functionDeclarations": declarations}], config


def function_declaration(function: dict[str, Any], i: int) -> dict[str, Any]:
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest(f"tools[{i}].function.name is missing", param=f"tools[{i}].function.name")
    declaration: dict[str, Any] = {"name": name}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if parameters is None or has_no_parameters(parameters):
        return declaration
    converted = to_gemini_schema(parameters)
    if converted is not None:
        declaration["parameters"] = converted
    else:
        declaration["parametersJsonSchema"] = parameters
    return declaration


def _tool_mode(choice: Any, where: str) -> tuple[str | None, list[str] | None]:
    if choice is None:
        return None, None
    if isinstance(choice, str):
        if choice in _TOOL_MODES:
            return _TOOL_MODES[choice], None
    elif isinstance(choice, dict):
        if choice.get("type") == "function":
            name = (choice.get("function") or {}).get("name")
            if isinstance(name, str) and name:
                return "ANY", [name]
        elif choice.get("type") == "allowed_tools":
            spec = choice.get("allowed_tools") or {}
            names = [(t.get("function") or {}).get("name") for t in spec.get("tools") or () if isinstance(t, dict)]
            if spec.get("mode") in ("auto", "required") and names and all(isinstance(n, str) for n in names):
                return ("ANY" if spec["mode"] == "required" else "AUTO"), names
    raise errors.UnsupportedFeature(f"this 'tool_choice' is not supported by {where}", param="tool_choice")


# --- generation config ---------------------------------------------------------------------------------------------


def generation_config(req: ChatRequest, where: str, model: str) -> dict[str, Any]:
    config = sampling_fields(req, max_tokens="maxOutputTokens", top_p="topP", stop="stopSequences")
    if req.response_format:
        _response_format(req.response_format, config, where)
    _extras(req.extra, config, where, model)
    if req.show_thoughts and config.get("thinkingConfig", {}).get("thinkingBudget") != 0:
        config.setdefault("thinkingConfig", {})["includeThoughts"] = True  # a summary; the thoughts stay Google's
    return config


def _response_format(fmt: dict[str, Any], config: dict[str, Any], where: str) -> None:
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise errors.InvalidRequest("response_format.json_schema.schema must be an object",
                                        param="response_format")
        config["responseMimeType"] = "application/json"
        converted = to_gemini_schema(schema)
        if converted is not None:
            config["responseSchema"] = converted
        else:
            config["responseJsonSchema"] = schema
        return
    raise errors.UnsupportedFeature(f"response_format type {kind!r} is not supported by {where}", param="response_format")


def _extras(extra: dict[str, Any], config: dict[str, Any], where: str, model: str) -> None:
    for key, value in extra.items():
        if value is None:
            continue
        if key == "n":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise errors.InvalidRequest("'n' must be a positive integer", param="n")
            if value > 1:
                config["candidateCount"] = value
        elif key in _CONFIG_EXTRAS:
            name, floats = _CONFIG_EXTRAS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float) if floats else int):
                raise errors.InvalidRequest(f"'{key}' must be {'a number' if floats else 'an integer'}", param=key)
            config[name] = value
        elif key == "reasoning_effort":
            if not isinstance(value, str) or value not in (
                    _THINKING_LEVELS if gemini3_or_later(model) else _THINKING_BUDGETS):
                raise errors.UnsupportedFeature(f"reasoning_effort {value!r} is not supported by {where}", param=key)
            config["thinkingConfig"] = _thinking(value, model)
        elif not may_leave_out(key, value):
            raise errors.UnsupportedFeature(f"'{key}' is not supported by {where}", param=key)


def _thinking(effort: str, model: str) -> dict[str, Any]:
    """Gemini 2.x thinks within a token budget; Gemini 3 and later by level (a level a model lacks: its 400)."""
    if gemini3_or_later(model):
        return {"thinkingLevel": _THINKING_LEVELS[effort]}
    return {"thinkingBudget": _THINKING_BUDGETS[effort]}
