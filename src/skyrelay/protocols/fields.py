"""What every inbound protocol needs to read a JSON body: one definition of the body and of JSON types.

Each protocol words its own errors (OpenAI's "missing required parameter" vs Anthropic's "Field required");
the rules of what counts as a string, a number or an integer live here once.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import errors

NUMBER = (int, float)
_TYPE_NAMES = {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer"}


def load_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise errors.InvalidRequest("the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    return data


def is_kind(value: Any, kind: type | tuple) -> bool:
    """isinstance, except that JSON true/false is never a number (bool is an int in Python)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def type_name(kind: type | tuple) -> str:
    return "number" if isinstance(kind, tuple) else _TYPE_NAMES.get(kind, kind.__name__)
