"""Check Anthropic Messages requests the way the Messages API does, and turn them into the neutral `ChatInput`.

Messages follow the API's validation answers (pydantic-style `field.path: reason`, status 400,
`invalid_request_error`), so a gateway's mistakes show up as they would against the real service: a missing
`max_tokens`, a `tool_result` answering no `tool_use`, a `tool_use` left unanswered, an image whose bytes are not
of its declared media type, an unknown parameter. Consecutive turns of the same role are merged, as the API does.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from ..generate import ChatInput, Message, ToolSpec

CREATE_PARAMS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p", "top_k",
    "tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers",
    "context_management", "output_config", "output_format", "cache_control", "diagnostics", "inference_geo", "speed",
})
COUNT_PARAMS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management",
    "output_config", "output_format", "cache_control", "speed",
})
_BLOCK_TYPES = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "container_upload",
)
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SERVER_TOOL = re.compile(r"^[a-z_]+_\d{8}$|^tool_search_tool_(bm25|regex)$")
_PY = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "list": list, "dictionary": dict}


class AnthropicError(Exception):
    """An error answer: {"type": "error", "error": {"type", "message"}, "request_id"}."""

    def __init__(self, status: int, type: str, message: str):
        super().__init__(message)
        self.status, self.type, self.message = status, type, message


def invalid(message: str) -> AnthropicError:
    return AnthropicError(400, "invalid_request_error", message)


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


def _expect(where: str, value: Any, kind: str) -> None:
    ok = isinstance(value, _PY[kind]) and (kind == "boolean" or not isinstance(value, bool))
    if not ok:
        raise invalid(f"{where}: Input should be a valid {kind}")


def _bounds(where: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise invalid(f"{where}: Input should be greater than or equal to {low}")
    if high is not None and value > high:
        raise invalid(f"{where}: Input should be less than or equal to {high}")


def _literal(where: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        quoted = [f"'{o}'" for o in options]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise invalid(f"{where}: Input should be {listed}")


def _required(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise invalid(f"{where}.{key}: Field required" if where else f"{key}: Field required")
    return obj[key]


def messages_request(data: dict[str, Any], *, count_only: bool = False) -> MessagesCall:
    known = COUNT_PARAMS if count_only else CREATE_PARAMS
    for key in data:
        if key not in known:
            raise invalid(f"{key}: Extra inputs are not permitted")
    model = _required(data, "model", "")
    _expect("model", model, "string")
    raw_messages = _required(data, "messages", "")
    max_tokens = None
    if not count_only:
        max_tokens = _required(data, "max_tokens", "")
        _expect("max_tokens", max_tokens, "integer")
        _bounds("max_tokens", max_tokens, 0, None)
    _expect("messages", raw_messages, "list")
    if not raw_messages:
        raise invalid("messages: List should have at least 1 item after validation, not 0")
    for name, kind, low, high in (("temperature", "number", 0, 1), ("top_p", "number", 0, 1),
                                  ("top_k", "integer", 0, None), ("stream", "boolean", None, None)):
        if data.get(name) is not None:
            _expect(name, data[name], kind)
            if kind != "boolean":
                _bounds(name, data[name], low, high)
    _check_metadata(data.get("metadata"))
    if data.get("service_tier") is not None:
        _literal("service_tier", data["service_tier"], ("auto", "standard_only"))
    tools = _tools(data.get("tools"))
    choice, forced, parallel = _tool_choice(data.get("tool_choice"), tools)
    thinking = _thinking(data.get("thinking"), max_tokens, choice, data.get("temperature"))
    schema = _output_format(data)
    messages = _system(data.get("system")) + _conversation(raw_messages)
    inp = ChatInput(model=model, messages=messages, tools=tools, tool_choice=choice, forced_tool=forced,
                    parallel_tool_calls=parallel, max_tokens=max_tokens, stop=_stop(data.get("stop_sequences")))
    return MessagesCall(inp, data.get("stream") is True, thinking, schema)


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    _expect("metadata", metadata, "dictionary")
    for key, value in metadata.items():
        if key != "user_id":
            raise invalid(f"metadata.{key}: Extra inputs are not permitted")
        if value is not None:
            _expect("metadata.user_id", value, "string")


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    _expect("stop_sequences", value, "list")
    for i, item in enumerate(value):
        _expect(f"stop_sequences.{i}", item, "string")
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
        _expect(f"system.{i}", block, "dictionary")
        _literal(f"system.{i}.type", block.get("type"), ("text",))
        text = _required(block, "text", f"system.{i}")
        _expect(f"system.{i}.text", text, "string")
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
        _expect(where, message, "dictionary")
        for key in message:
            if key not in ("role", "content"):
                raise invalid(f"{where}.{key}: Extra inputs are not permitted")
        role = _required(message, "role", where)
        _literal(f"{where}.role", role, ("user", "assistant"))
        blocks = _blocks(_required(message, "content", where), where)
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
        _check_block(block, f"{where}.content.{j}")
    return content


def _check_block(block: Any, where: str) -> None:
    _expect(where, block, "dictionary")
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        expected = ", ".join(f"'{t}'" for t in _BLOCK_TYPES)
        raise invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      f"{expected}")
    at = f"{where}.{kind}"
    if kind == "text":
        _expect(f"{at}.text", _required(block, "text", at), "string")
        if not block["text"]:
            raise invalid("messages: text content blocks must be non-empty")
    elif kind == "image":
        _check_image(_required(block, "source", at), f"{at}.source")
    elif kind == "tool_use":
        _expect(f"{at}.id", _required(block, "id", at), "string")
        _expect(f"{at}.name", _required(block, "name", at), "string")
        _expect(f"{at}.input", _required(block, "input", at), "dictionary")
    elif kind == "tool_result":
        _expect(f"{at}.tool_use_id", _required(block, "tool_use_id", at), "string")
        content = block.get("content")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                _check_block(inner, f"{at}.content.{k}")
        elif content is not None and not isinstance(content, str):
            raise invalid(f"{at}.content: Input should be a valid string")
    elif kind == "thinking":
        _expect(f"{at}.thinking", _required(block, "thinking", at), "string")
        _expect(f"{at}.signature", _required(block, "signature", at), "string")
    elif kind == "document":
        _expect(f"{at}.source", _required(block, "source", at), "dictionary")


def _check_image(source: Any, where: str) -> None:
    _expect(where, source, "dictionary")
    kind = source.get("type")
    if kind not in ("base64", "url", "file"):
        raise invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      f"'base64', 'url', 'file'")
    if kind == "url":
        _expect(f"{where}.url.url", _required(source, "url", f"{where}.url"), "string")
        return
    if kind == "file":
        _expect(f"{where}.file.file_id", _required(source, "file_id", f"{where}.file"), "string")
        return
    declared = _required(source, "media_type", f"{where}.base64")
    _literal(f"{where}.base64.media_type", declared, _MEDIA_TYPES)
    data = _required(source, "data", f"{where}.base64")
    _expect(f"{where}.base64.data", data, "string")
    try:
        head = base64.b64decode(data[:64], validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}.base64.data: The image data is not valid base64.") from None
    actual = sniff_image(head)
    if actual is None:
        raise invalid("Could not process image")
    if actual != declared:
        raise invalid(f"{where}.base64: The image was specified using the {declared} media type, but the image "
                      f"appears to be a {actual} image")


def sniff_image(head: bytes) -> str | None:
    """The media type an image's first bytes say it is."""
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


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
            texts.append(f"{block['name']}({orjson.dumps(block['input']).decode()})")
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
    _expect("tools", raw, "list")
    out: list[ToolSpec] = []
    names: set[str] = set()
    for i, tool in enumerate(raw):
        _expect(f"tools.{i}", tool, "dictionary")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            if not isinstance(kind, str) or not _SERVER_TOOL.match(kind):
                raise invalid(f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the "
                              f"expected tags: 'custom', or a server tool type such as 'web_search_20250305'")
            name = tool.get("name")  # server tools: accepted, never called by this fake model
        else:
            at = f"tools.{i}.custom"
            name = _required(tool, "name", at)
            _expect(f"{at}.name", name, "string")
            if not _TOOL_NAME.match(name):
                raise invalid(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = _required(tool, "input_schema", at)
            _expect(f"{at}.input_schema", schema, "dictionary")
            _literal(f"{at}.input_schema.type", schema.get("type"), ("object",))
            description = tool.get("description") or ""
            _expect(f"{at}.description", description, "string")
            out.append(ToolSpec(name, description, schema))
        if name in names:
            raise invalid("tools: Tool names must be unique.")
        names.add(name)
    return out


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[str, str | None, bool]:
    if raw is None:
        return "auto", None, True
    _expect("tool_choice", raw, "dictionary")
    kind = raw.get("type")
    _literal("tool_choice.type", kind, ("auto", "any", "tool", "none"))
    parallel = raw.get("disable_parallel_tool_use") is not True
    if kind == "tool":
        name = _required(raw, "name", "tool_choice.tool")
        _expect("tool_choice.tool.name", name, "string")
        if name not in {t.name for t in tools}:
            raise invalid(f"tool_choice.name: Tool '{name}' not found in provided tools")
        return "function", name, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], None, parallel


def _thinking(raw: Any, max_tokens: int | None, choice: str, temperature: Any) -> bool:
    if raw is None:
        return False
    _expect("thinking", raw, "dictionary")
    kind = raw.get("type")
    _literal("thinking.type", kind, ("enabled", "disabled", "adaptive"))
    if kind == "disabled":
        return False
    if kind == "enabled":
        budget = _required(raw, "budget_tokens", "thinking.enabled")
        _expect("thinking.enabled.budget_tokens", budget, "integer")
        _bounds("thinking.enabled.budget_tokens", budget, 1024, None)
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
        _expect("output_config", config, "dictionary")
        if config.get("effort") is not None:
            _literal("output_config.effort", config["effort"], ("low", "medium", "high", "xhigh", "max"))
        fmt, where = config.get("format"), "output_config.format"
    fmt = data.get("output_format") if fmt is None else fmt
    if fmt is None:
        return None
    _expect(where, fmt, "dictionary")
    _literal(f"{where}.type", fmt.get("type"), ("json_schema",))
    schema = _required(fmt, "schema", where)
    _expect(f"{where}.schema", schema, "dictionary")
    return schema
