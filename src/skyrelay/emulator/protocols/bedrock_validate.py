"""Check a Converse request the way Bedrock does, and turn it into the neutral `ChatInput`.

Two layers, as on the real service: the API's constraints (types, required members, ranges, patterns, enums,
all reported at once as "N validation errors detected: Value ... at 'messages.1.member.role' failed to satisfy
constraint: ...", list positions counted from 1), then the conversation rules, first failure wins (must start
with a user message, roles alternate, no empty content or blank text, toolUse/toolResult need a toolConfig and
must pair up turn by turn), worded as Bedrock words them (positions counted from 0 there). Members this
emulator does not model (documents, guardrails, cache points, reasoning) are accepted and ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from ..generate import ChatInput, Message, ToolSpec, json_text
from ..model_limits import bedrock_max_output
from .bedrock_wire import BedrockError, validation

_START = "A conversation must start with a user message. Try again with a conversation that starts with a user message."
_ALTERNATE = ("A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
              "between user and assistant roles and try again.")
_NEEDS_TOOL_CONFIG = "The toolConfig field must be defined when using toolUse and toolResult content blocks."
_ROLES = ("user", "assistant")
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
_RESULT_STATUS = ("success", "error")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]+")
_CONTENT = {"text", "image", "toolUse", "toolResult", "document", "video", "audio", "guardContent", "cachePoint",
            "reasoningContent", "citationsContent", "searchResult", "toolAddition", "toolRemoval"}
_RESULT_CONTENT = {"json", "text", "image", "document", "video", "searchResult"}
_SYSTEM = {"text", "guardContent", "cachePoint"}
_TOOLS = {"toolSpec", "systemTool", "cachePoint"}
_CHOICES = {"auto", "any", "tool"}
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise BedrockError(400, "SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _type_error("", dict)
    return data


def _type_error(path: str, kind: type) -> BedrockError:
    where = f" at '{path}'" if path else ""
    return BedrockError(400, "SerializationException", f"Unexpected value type{where}: expected {_KINDS[kind]}.")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "'" + json_text(value)[:200] + "'"
    return f"'{value}'"


class _Checker:
    """Walks the body, collects constraint violations, and raises on the first wrong JSON type."""

    def __init__(self):
        self.violations: list[str] = []

    def violate(self, value: Any, path: str, rule: str) -> None:
        self.violations.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: Member {rule}")

    def typed(self, value: Any, kind: type, path: str, required: bool = False) -> Any:
        if value is None:
            if required:
                self.violate(None, path, "must not be null")
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise _type_error(path, kind)
        return value

    def number(self, value: Any, path: str, low: float, high: float | None, integer: bool) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise BedrockError(400, "SerializationException", f"Unexpected value type at '{path}': expected "
                                                               f"{'an integer' if integer else 'a number'}.")
        if value < low:
            self.violate(value, path, f"must have value greater than or equal to {low:g}")
        if high is not None and value > high:
            self.violate(value, path, f"must have value less than or equal to {high:g}")
        return value

    def text(self, value: Any, path: str, required: bool = False, pattern: re.Pattern | None = None,
             max_len: int | None = None) -> str | None:
        value = self.typed(value, str, path, required)
        if value is None:
            return None
        if not value:
            self.violate(value, path, "must have length greater than or equal to 1")
        elif max_len is not None and len(value) > max_len:
            self.violate(value, path, f"must have length less than or equal to {max_len}")
        elif pattern is not None and not pattern.fullmatch(value):
            self.violate(value, path, f"must satisfy regular expression pattern: {pattern.pattern}")
        return value

    def enum(self, value: Any, path: str, allowed: tuple[str, ...], required: bool = False) -> str | None:
        value = self.typed(value, str, path, required)
        if value is not None and value not in allowed:
            self.violate(value, path, f"must satisfy enum value set: [{', '.join(allowed)}]")
        return value

    def union(self, value: Any, path: str, members: set[str]) -> tuple[str | None, Any]:
        """The one member set in a union object (ContentBlock, Tool, ToolChoice, ...)."""
        value = self.typed(value, dict, path, required=True)
        if value is None:
            return None, None
        present = [k for k in value if k in members and value[k] is not None]
        if len(present) != 1:
            raise validation(f"The union at '{path}' must set exactly one of: {', '.join(sorted(members))}.")
        return present[0], value[present[0]]

    def done(self) -> None:
        count = len(self.violations)
        if count:
            plural = "error" if count == 1 else "errors"
            raise validation(f"{count} validation {plural} detected: " + "; ".join(self.violations))


class _Turn:
    """One checked message: its role and its blocks as (kind, value)."""

    __slots__ = ("role", "blocks")

    def __init__(self, role: str | None, blocks: list[tuple[str, Any]] | None):
        self.role = role
        self.blocks = blocks


def converse_input(payload: dict[str, Any], model: str, max_output_tokens: int | None = None) -> ChatInput:
    """Check a Converse / ConverseStream body and return what the fake model answers."""
    c = _Checker()
    messages = c.typed(payload.get("messages"), list, "messages") or []
    turns = [_message(c, raw, i) for i, raw in enumerate(messages)]
    system = _system(c, payload.get("system"))
    inference = c.typed(payload.get("inferenceConfig"), dict, "inferenceConfig") or {}
    max_tokens = c.number(inference.get("maxTokens"), "inferenceConfig.maxTokens", 1, None, integer=True)
    c.number(inference.get("temperature"), "inferenceConfig.temperature", 0, 1, integer=False)
    c.number(inference.get("topP"), "inferenceConfig.topP", 0, 1, integer=False)
    stops = c.typed(inference.get("stopSequences"), list, "inferenceConfig.stopSequences") or []
    if len(stops) > 2500:
        c.violate(stops, "inferenceConfig.stopSequences", "must have length less than or equal to 2500")
    for i, stop in enumerate(stops):
        c.text(stop, f"inferenceConfig.stopSequences.{i + 1}.member", required=True)
    tools, choice, forced = _tool_config(c, payload.get("toolConfig"))
    c.typed(payload.get("additionalModelRequestFields"), dict, "additionalModelRequestFields")
    c.done()
    _check_conversation(turns, tools is not None)
    if forced is not None and forced not in {t.name for t in tools or ()}:
        raise validation(f"The tool {forced} named in toolConfig.toolChoice is not defined in toolConfig.tools.")
    if max_output_tokens is None:
        max_output_tokens = bedrock_max_output(model)
    if max_output_tokens is not None and max_tokens is not None and max_tokens > max_output_tokens:
        raise validation(f"The maximum tokens you requested exceeds the model limit of {max_output_tokens}. Try "
                         f"again with a maximum tokens value that is lower than {max_output_tokens}.")
    return ChatInput(model=model, messages=_neutral(system, turns), tools=tools or [], tool_choice=choice,
                     forced_tool=forced, max_tokens=max_tokens, stop=list(stops))


def _message(c: _Checker, raw: Any, i: int) -> _Turn:
    path = f"messages.{i + 1}.member"
    raw = c.typed(raw, dict, path, required=True)
    if raw is None:
        return _Turn(None, None)
    role = c.enum(raw.get("role"), f"{path}.role", _ROLES, required=True)
    content = c.typed(raw.get("content"), list, f"{path}.content", required=True)
    blocks = None if content is None else [_block(c, b, f"{path}.content.{j + 1}.member")
                                           for j, b in enumerate(content)]
    return _Turn(role, blocks)


def _block(c: _Checker, raw: Any, path: str) -> tuple[str, Any]:
    kind, value = c.union(raw, path, _CONTENT)
    where = f"{path}.{kind}"
    if kind == "text":
        c.typed(value, str, where)
    elif kind == "image":
        _image(c, value, where)
    elif kind == "toolUse":
        value = c.typed(value, dict, where) or {}
        c.text(value.get("toolUseId"), f"{where}.toolUseId", True, _TOOL_USE_ID, 64)
        c.text(value.get("name"), f"{where}.name", True, _TOOL_NAME, 64)
        if value.get("input") is None:
            c.violate(None, f"{where}.input", "must not be null")
    elif kind == "toolResult":
        value = c.typed(value, dict, where) or {}
        c.text(value.get("toolUseId"), f"{where}.toolUseId", True, _TOOL_USE_ID, 64)
        c.enum(value.get("status"), f"{where}.status", _RESULT_STATUS)
        for k, item in enumerate(c.typed(value.get("content"), list, f"{where}.content", required=True) or []):
            part, inner = c.union(item, f"{where}.content.{k + 1}.member", _RESULT_CONTENT)
            if part == "text":
                c.typed(inner, str, f"{where}.content.{k + 1}.member.text")
            elif part == "image":
                _image(c, inner, f"{where}.content.{k + 1}.member.image")
    else:
        c.typed(value, dict, where)
    return kind or "", value


def _image(c: _Checker, value: Any, path: str) -> None:
    value = c.typed(value, dict, path) or {}
    c.enum(value.get("format"), f"{path}.format", _IMAGE_FORMATS, required=True)
    source, data = c.union(value.get("source"), f"{path}.source", {"bytes", "s3Location"})
    if source == "bytes":
        c.typed(data, str, f"{path}.source.bytes")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BedrockError(400, "SerializationException",
                               f"Unable to decode the base64 value at '{path}.source.bytes'.") from None
        if not raw:
            c.violate("", f"{path}.source.bytes", "must have length greater than or equal to 1")


def _system(c: _Checker, raw: Any) -> list[str]:
    texts = []
    for i, item in enumerate(c.typed(raw, list, "system") or []):
        kind, value = c.union(item, f"system.{i + 1}.member", _SYSTEM)
        if kind == "text":
            texts.append(c.text(value, f"system.{i + 1}.member.text") or "")
    return texts


def _tool_config(c: _Checker, raw: Any) -> tuple[list[ToolSpec] | None, str, str | None]:
    config = c.typed(raw, dict, "toolConfig")
    if config is None:
        return None, "auto", None
    tools: list[ToolSpec] = []
    listed = c.typed(config.get("tools"), list, "toolConfig.tools", required=True)
    if listed is not None and not listed:
        c.violate(listed, "toolConfig.tools", "must have length greater than or equal to 1")
    for i, item in enumerate(listed or []):
        path = f"toolConfig.tools.{i + 1}.member"
        kind, value = c.union(item, path, _TOOLS)
        if kind != "toolSpec":
            continue
        value = c.typed(value, dict, f"{path}.toolSpec") or {}
        name = c.text(value.get("name"), f"{path}.toolSpec.name", True, _TOOL_NAME, 64)
        description = c.text(value.get("description"), f"{path}.toolSpec.description")
        schema_kind, schema = c.union(value.get("inputSchema"), f"{path}.toolSpec.inputSchema", {"json"})
        if schema_kind == "json":
            c.typed(schema, dict, f"{path}.toolSpec.inputSchema.json")
        tools.append(ToolSpec(name or "", description or "", schema if isinstance(schema, dict) else None))
    if config.get("toolChoice") is None:
        return tools, "auto", None
    kind, value = c.union(config["toolChoice"], "toolConfig.toolChoice", _CHOICES)
    if kind == "tool":
        value = c.typed(value, dict, "toolConfig.toolChoice.tool") or {}
        return tools, "function", c.text(value.get("name"), "toolConfig.toolChoice.tool.name", True, _TOOL_NAME, 64)
    return tools, "required" if kind == "any" else "auto", None


def _check_conversation(turns: list[_Turn], has_tool_config: bool) -> None:
    if not turns or turns[0].role != "user":
        raise validation(_START)
    for before, after in zip(turns, turns[1:]):
        if before.role == after.role:
            raise validation(_ALTERNATE)
    uses_tools = False
    for i, turn in enumerate(turns):
        if not turn.blocks:
            raise validation(f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock "
                             "object to the content field and try again.")
        for j, (kind, value) in enumerate(turn.blocks):
            if kind == "text" and not value.strip():
                raise validation(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. "
                                 "Add text to the text field, and try again.")
            if kind in ("toolUse", "toolResult"):
                uses_tools = True
                wrong_side = "user" if kind == "toolUse" else "assistant"
                if turn.role == wrong_side:
                    raise validation(f"The {kind} block at messages.{i}.content.{j} is not allowed in a "
                                     f"{wrong_side} message.")
    if uses_tools and not has_tool_config:
        raise validation(_NEEDS_TOOL_CONFIG)
    _check_tool_pairs(turns)


def _ids(turn: _Turn, kind: str) -> list[str]:
    return [v.get("toolUseId") for k, v in turn.blocks or () if k == kind]


def _check_tool_pairs(turns: list[_Turn]) -> None:
    for i, turn in enumerate(turns):
        if turn.role != "user":
            continue
        calls = _ids(turns[i - 1], "toolUse") if i else []
        results = _ids(turn, "toolResult")
        if len(results) > len(calls):
            raise validation(f"The number of toolResult blocks at messages.{i}.content exceeds the number of "
                             "toolUse blocks of previous turn.")
        missing = [c for c in calls if c not in results]
        if missing:
            raise validation(f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
                             + ", ".join(missing))


def _neutral(system: list[str], turns: list[_Turn]) -> list[Message]:
    """The conversation as the fake model sees it: tool results become `tool` messages."""
    out = [Message("system", "\n".join(system))] if system else []
    for turn in turns:
        texts: list[str] = []
        results: list[str] = []
        images = 0
        for kind, value in turn.blocks or ():
            if kind == "text":
                texts.append(value)
            elif kind == "image":
                images += 1
            elif kind == "toolUse":
                texts.append(f"{value.get('name')}({json_text(value.get('input'))})")
            elif kind == "toolResult":
                results.append(json_text(value.get("content")))
        if results:
            out.append(Message("tool", "\n".join(results)))
        if texts or images or not results:
            out.append(Message(turn.role or "user", "\n".join(texts), images))
    return out
