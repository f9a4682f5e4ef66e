"""Check Anthropic Messages requests the way the Messages API does, and turn them into the neutral `ChatInput`.

Messages follow the API's validation answers (pydantic-style `field.path: reason`, status 400,
`invalid_request_error`), so a gateway's mistakes show up as they would against the real service: a missing
`max_tokens`, a `tool_result` answering no `tool_use`, a `tool_use` left unanswered, an image whose bytes are not
of its declared media type, an unknown parameter. Consecutive turns of the same role are merged, as the API does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..generate import ChatInput, Message, ToolSpec, json_text
from ..model_limits import anthropic_max_output
from .anthropic_blocks import bounds, check_block, expect, invalid, literal, required

CREATE_PARAMS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p", "top_k",
    "tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers",
    "context_management", "output_config", "output_format", "cache_control", "diagnostics", "inference_geo", "speed",
})
COUNT_PARAMS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management",
    "output_config", "output_format", "cache_control", "speed",
})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SERVER_TOOL = re.compile(r"^[a-z_]+_\d{8}$|^tool_search_tool_(bm25|regex)$")


class MessagesCall:
    """A validated request: the neutral input plus what only the Anthropic rendering needs."""

    __slots__ = ("inp", "stream", "thinking", "json_schema")

    def __init__(self, inp: ChatInput, stream: bool, thinking: bool, json_schema: dict[str, Any] | None):
        self.inp = inp
        self.stream = stream
        self.thinking = thinking  # reply opens with a thinking block
        self.json_schema = json_schema  # structured output requested (output_config.format)


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("There was an issue with the format of the request body: it is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid("Input should be a valid dictionary")
    return data


def messages_request(data: dict[str, Any], *, count_only: bool = False) -> MessagesCall:
    known = COUNT_PARAMS if count_only else CREATE_PARAMS
    for key in data:
        if key not in known:
            raise invalid(f"{key}: Extra inputs are not permitted")
    model = required(data, "model", "")
    expect("model", model, "string")
    raw_messages = required(data, "messages", "")
    max_tokens = None
    if not count_only:
        max_tokens = required(data, "max_tokens", "")
        expect("max_tokens", max_tokens, "integer")
        bounds("max_tokens", max_tokens, 0, None)
        _check_output_limit(max_tokens, model)
    expect("messages", raw_messages, "list")
    if not raw_messages:
        raise invalid("messages: List should have at least 1 item after validation, not 0")
    for name, kind, low, high in (("temperature", "number", 0, 1), ("top_p", "number", 0, 1),
                                  ("top_k", "integer", 0, None), ("stream", "boolean", None, None)):
        if data.get(name) is not None:
            expect(name, data[name], kind)
            if kind != "boolean":
                bounds(name, data[name], low, high)
    _check_metadata(data.get("metadata"))
    if data.get("service_tier") is not None:
        literal("service_tier", data["service_tier"], ("auto", "standard_only"))
    tools = _tools(data.get("tools"))
    choice, forced, parallel = _tool_choice(data.get("tool_choice"), tools)
    thinking = _thinking(data.get("thinking"), max_tokens, choice, data.get("temperature"))
    schema = _output_format(data)
    messages = _system(data.get("system")) + _conversation(raw_messages)
    inp = ChatInput(model=model, messages=messages, tools=tools, tool_choice=choice, forced_tool=forced,
                    parallel_tool_calls=parallel, max_tokens=max_tokens, stop=_stop(data.get("stop_sequences")))
    return MessagesCall(inp, data.get("stream") is True, thinking, schema)


def _check_output_limit(max_tokens: int, model: str) -> None:
    limit = anthropic_max_output(model)
    if limit is not None and max_tokens > limit:
        raise invalid(f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens "
                      f"for {model}")


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    expect("metadata", metadata, "dictionary")
    for key, value in metadata.items():
        if key != "user_id":
            raise invalid(f"metadata.{key}: Extra inputs are not permitted")
        if value is not None:
            expect("metadata.user_id", value, "string")


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    expect("stop_sequences", value, "list")
    for i, item in enumerate(value):
        expect(f"stop_sequences.{i}", item, "string")
        if not item.strip():
            raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
    return list(value)


def _system(system: Any) -> list[Message]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Message("system", system)] if system else []
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid string")
    texts = []
    for i, block in enumerate(system):
        expect(f"system.{i}", block, "dictionary")
        literal(f"system.{i}.type", block.get("type"), ("text",))
        text = required(block, "text", f"system.{i}")
        expect(f"system.{i}.text", text, "string")
        texts.append(text)
    return [Message("system", "\n".join(texts))] if texts else []


class _Turn:
    """Consecutive messages of one role, merged as the API merges them."""

    __slots__ = ("role", "first", "blocks")

    def __init__(self, role: str, first: int):
        self.role, self.first, self.blocks = role, first, []  # blocks: (message index, block index, block)


def _conversation(raw: list[Any]) -> list[Message]:
    turns: list[_Turn] = []
    last = len(raw) - 1
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        expect(where, message, "dictionary")
        for key in message:
            if key not in ("role", "content"):
                raise invalid(f"{where}.{key}: Extra inputs are not permitted")
        role = required(message, "role", where)
        literal(f"{where}.role", role, ("user", "assistant"))
        blocks = _blocks(required(message, "content", where), where)
        if not blocks and not (i == last and role == "assistant"):
            raise invalid(f"{where}: all messages must have non-empty content except for the optional final "
                          f"assistant message")
        if not turns or turns[-1].role != role:
            turns.append(_Turn(role, i))
        turns[-1].blocks += [(i, j, b) for j, b in enumerate(blocks)]
    _check_tool_pairs(turns)
    return [_neutral(turn) for turn in turns]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a valid list")
    for j, block in enumerate(content):
        check_block(block, f"{where}.content.{j}")
    return content


def _check_tool_pairs(turns: list[_Turn]) -> None:
    """Each tool_use is answered by a tool_result in the very next turn, and each tool_result answers one."""
    for n, turn in enumerate(turns):
        if turn.role != "assistant":
            continue
        asked = [b["id"] for _, _, b in turn.blocks if b.get("type") == "tool_use"]
        following = turns[n + 1] if n + 1 < len(turns) else None
        answered = {b["tool_use_id"] for _, _, b in following.blocks if b.get("type") == "tool_result"} if (
            following is not None) else set()
        missing = [a for a in asked if a not in answered]
        if missing:
            raise invalid(f"messages.{turn.first}: `tool_use` ids were found without `tool_result` blocks "
                          f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                          f"corresponding `tool_result` block in the next message.")
    for n, turn in enumerate(turns):
        if turn.role != "user":
            continue
        previous = turns[n - 1] if n else None
        asked = {b["id"] for _, _, b in previous.blocks if b.get("type") == "tool_use"} if previous else set()
        for i, j, block in turn.blocks:
            if block.get("type") == "tool_result" and block["tool_use_id"] not in asked:
                raise invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                              f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                              f"`tool_use` block in the previous message.")


def _neutral(turn: _Turn) -> Message:
    texts: list[str] = []
    images = 0
    answers_tool = False
    for _, _, block in turn.blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "image":
            images += 1
        elif kind == "tool_use":
            texts.append(f"{block['name']}({json_text(block['input'])})")
        elif kind == "tool_result":
            answers_tool = True
            content = block.get("content")
            if isinstance(content, str):
                texts.append(content)
            for inner in content if isinstance(content, list) else ():
                if inner.get("type") == "text":
                    texts.append(inner["text"])
                images += inner.get("type") == "image"
        elif kind == "thinking":
            texts.append(block["thinking"])
    role = "tool" if answers_tool else turn.role  # no new tool call right after a tool result
    return Message(role, "\n".join(texts), images)


def _tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    expect("tools", raw, "list")
    out: list[ToolSpec] = []
    names: set[str] = set()
    for i, tool in enumerate(raw):
        expect(f"tools.{i}", tool, "dictionary")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            if not isinstance(kind, str) or not _SERVER_TOOL.match(kind):
                raise invalid(f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the "
                              f"expected tags: 'custom', or a server tool type such as 'web_search_20250305'")
            name = tool.get("name")  # server tools: accepted, never called by this fake model
        else:
            at = f"tools.{i}.custom"
            name = required(tool, "name", at)
            expect(f"{at}.name", name, "string")
            if not _TOOL_NAME.match(name):
                raise invalid(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = required(tool, "input_schema", at)
            expect(f"{at}.input_schema", schema, "dictionary")
            literal(f"{at}.input_schema.type", schema.get("type"), ("object",))
            description = tool.get("description") or ""
            expect(f"{at}.description", description, "string")
            out.append(ToolSpec(name, description, schema))
        if name in names:
            raise invalid("tools: Tool names must be unique.")
        names.add(name)
    return out


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[str, str | None, bool]:
    if raw is None:
        return "auto", None, True
    expect("tool_choice", raw, "dictionary")
    kind = raw.get("type")
    literal("tool_choice.type", kind, ("auto", "any", "tool", "none"))
    parallel = raw.get("disable_parallel_tool_use") is not True
    if kind == "tool":
        name = required(raw, "name", "tool_choice.tool")
        expect("tool_choice.tool.name", name, "string")
        if name not in {t.name for t in tools}:
            raise invalid(f"tool_choice.name: Tool '{name}' not found in provided tools")
        return "function", name, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], None, parallel


def _thinking(raw: Any, max_tokens: int | None, choice: str, temperature: Any) -> bool:
    if raw is None:
        return False
    expect("thinking", raw, "dictionary")
    kind = raw.get("type")
    literal("thinking.type", kind, ("enabled", "disabled", "adaptive"))
    if kind == "disabled":
        return False
    if kind == "enabled":
        budget = required(raw, "budget_tokens", "thinking.enabled")
        expect("thinking.enabled.budget_tokens", budget, "integer")
        bounds("thinking.enabled.budget_tokens", budget, 1024, None)
        if max_tokens is not None and max_tokens <= budget:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if choice in ("required", "function"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if temperature is not None and temperature != 1:
        raise invalid("`temperature` may only be set to 1 when thinking is enabled.")
    return True


def _output_format(data: dict[str, Any]) -> dict[str, Any] | None:
    config = data.get("output_config")
    fmt = None
    where = "output_format"
    if config is not None:
        expect("output_config", config, "dictionary")
        if config.get("effort") is not None:
            literal("output_config.effort", config["effort"], ("low", "medium", "high", "xhigh", "max"))
        fmt, where = config.get("format"), "output_config.format"
    fmt = data.get("output_format") if fmt is None else fmt
    if fmt is None:
        return None
    expect(where, fmt, "dictionary")
    literal(f"{where}.type", fmt.get("type"), ("json_schema",))
    schema = required(fmt, "schema", where)
    expect(f"{where}.schema", schema, "dictionary")
    return schema
