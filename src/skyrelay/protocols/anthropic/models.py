"""Anthropic's Models API shape for the gateway's model groups: `GET /v1/models` and `GET /v1/models/{id}`.

The same paths serve OpenAI's shape; a request with an `anthropic-version` header (which the anthropic SDKs always
send, and the openai SDKs never do) gets this one: {"type": "model", "id", "display_name", "created_at"} and a
page {"data", "has_more", "first_id", "last_id"} that honours `limit` (1-1000, default 20), `after_id` and
`before_id`, as the SDKs' auto-pagination uses them.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from ... import errors

DEFAULT_LIMIT, MAX_LIMIT = 20, 1000


def model_object(name: str, created: int) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))}


def render_model(name: str, created: int) -> bytes:
    return orjson.dumps(model_object(name, created))


def render_models(names: list[str], created: int, query: str) -> bytes:
    params = {key: values[-1] for key, values in parse_qs(query).items()}
    limit = _limit(params.get("limit"))
    if "before_id" in params:  # the page just before that model
        end = _position(names, params["before_id"], "before_id")
        start = max(0, end - limit)
        more = start > 0
    else:  # the page just after that model, or the first
        start = _position(names, params["after_id"], "after_id") + 1 if "after_id" in params else 0
        end = min(len(names), start + limit)
        more = end < len(names)
    page = names[start:end]
    return orjson.dumps({"data": [model_object(name, created) for name in page], "has_more": more,
                         "first_id": page[0] if page else None, "last_id": page[-1] if page else None})


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidRequest(f"limit: must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    return limit


def _position(names: list[str], name: str, param: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        raise errors.InvalidRequest(f"{param}: no model '{name}'", param=param) from None
