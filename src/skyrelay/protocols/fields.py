"""What every inbound protocol needs to read a JSON body: one definition of the body and of JSON types.

Each protocol words its own errors (OpenAI's "missing required parameter" vs Anthropic's "Field required");
the rules of what counts as a string, a number or an integer live here once.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from .. import errors

NUMBER = (int, float)
_TYPE_NAMES = {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer"}

# How deeply a request body may nest objects and arrays (the body itself is level 1). Far above any real tool
# schema, far below the 254 levels orjson can write: a provider wraps the client's values in a few levels of its
# own before it re-encodes them, and a body it cannot encode must be refused here, before any deployment sees it.
MAX_NESTING = 128
_ORJSON_MAX_DEPTH = 254  # orjson.dumps raises JSONEncodeError past this many levels


def load_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise errors.InvalidRequest("the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    # Nesting needs an opening bracket per level: a body with at most MAX_NESTING of them (nearly every chat
    # request) is decided by two C-speed counts; only bigger ones are probed.
    if body.count(b"{") + body.count(b"[") > MAX_NESTING and nested_too_deeply(data):
        raise errors.InvalidRequest(
            f"the request body nests objects and arrays more than {MAX_NESTING} levels deep; "
            f"this gateway accepts at most {MAX_NESTING}")
    return data


class _DepthProbe(threading.local):
    """A chain of lists holding a value at (_ORJSON_MAX_DEPTH - MAX_NESTING) levels down, one chain per thread:
    orjson then fails to encode it exactly when the value nests more than MAX_NESTING levels. That is 4-5x
    cheaper than walking the value in Python; the chain is reused, not rebuilt per request."""

    def __init__(self) -> None:
        self.inner: list[Any] = [None]
        self.outer = self.inner
        for _ in range(_ORJSON_MAX_DEPTH - MAX_NESTING - 1):
            self.outer = [self.outer]


_probe = _DepthProbe()


def nested_too_deeply(value: Any) -> bool:
    """Whether a parsed JSON value nests objects and arrays more than MAX_NESTING levels deep."""
    probe = _probe
    probe.inner[0] = value
    try:
        orjson.dumps(probe.outer)
    except orjson.JSONEncodeError:
        return True
    finally:
        probe.inner[0] = None
    return False


def is_kind(value: Any, kind: type | tuple) -> bool:
    """isinstance, except that JSON true/false is never a number (bool is an int in Python)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def type_name(kind: type | tuple) -> str:
    return "number" if isinstance(kind, tuple) else _TYPE_NAMES.get(kind, kind.__name__)
