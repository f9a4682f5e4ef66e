"""The pieces of Anthropic request checking: the error type, pydantic-style field checks, content blocks.

Messages mirror the Messages API's validation answers (`field.path: reason`, 400 `invalid_request_error`); images
are checked against their declared media type by their first bytes, as the API does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

_BLOCK_TYPES = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "container_upload",
)
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_PY = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "list": list, "dictionary": dict}


class AnthropicError(Exception):
    """An error answer: {"type": "error", "error": {"type", "message"}, "request_id"}."""

    def __init__(self, status: int, type: str, message: str):
        super().__init__(message)
        self.status, self.type, self.message = status, type, message


def invalid(message: str) -> AnthropicError:
    return AnthropicError(400, "invalid_request_error", message)


def expect(where: str, value: Any, kind: str) -> None:
    ok = isinstance(value, _PY[kind]) and (kind == "boolean" or not isinstance(value, bool))
    if not ok:
        raise invalid(f"{where}: Input should be a valid {kind}")


def bounds(where: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise invalid(f"{where}: Input should be greater than or equal to {low}")
    if high is not None and value > high:
        raise invalid(f"{where}: Input should be less than or equal to {high}")


def literal(where: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        quoted = [f"'{o}'" for o in options]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise invalid(f"{where}: Input should be {listed}")


def required(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise invalid(f"{where}.{key}: Field required" if where else f"{key}: Field required")
    return obj[key]


def check_block(block: Any, where: str) -> None:
    expect(where, block, "dictionary")
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        expected = ", ".join(f"'{t}'" for t in _BLOCK_TYPES)
        raise invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      f"{expected}")
    at = f"{where}.{kind}"
    if kind == "text":
        expect(f"{at}.text", required(block, "text", at), "string")
        if not block["text"]:
            raise invalid("messages: text content blocks must be non-empty")
    elif kind == "image":
        check_image(required(block, "source", at), f"{at}.source")
    elif kind == "tool_use":
        expect(f"{at}.id", required(block, "id", at), "string")
        expect(f"{at}.name", required(block, "name", at), "string")
        expect(f"{at}.input", required(block, "input", at), "dictionary")
    elif kind == "tool_result":
        expect(f"{at}.tool_use_id", required(block, "tool_use_id", at), "string")
        content = block.get("content")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                check_block(inner, f"{at}.content.{k}")
        elif content is not None and not isinstance(content, str):
            raise invalid(f"{at}.content: Input should be a valid string")
    elif kind == "thinking":
        expect(f"{at}.thinking", required(block, "thinking", at), "string")
        expect(f"{at}.signature", required(block, "signature", at), "string")
    elif kind == "document":
        expect(f"{at}.source", required(block, "source", at), "dictionary")


def check_image(source: Any, where: str) -> None:
    expect(where, source, "dictionary")
    kind = source.get("type")
    if kind not in ("base64", "url", "file"):
        raise invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      f"'base64', 'url', 'file'")
    if kind == "url":
        expect(f"{where}.url.url", required(source, "url", f"{where}.url"), "string")
        return
    if kind == "file":
        expect(f"{where}.file.file_id", required(source, "file_id", f"{where}.file"), "string")
        return
    declared = required(source, "media_type", f"{where}.base64")
    literal(f"{where}.base64.media_type", declared, _MEDIA_TYPES)
    data = required(source, "data", f"{where}.base64")
    expect(f"{where}.base64.data", data, "string")
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
