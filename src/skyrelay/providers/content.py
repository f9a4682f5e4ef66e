"""Message content every cloud reads the same way: image parts' URLs, and base64 `data:` URLs (images, PDFs and
other files sent inline)."""

from __future__ import annotations

import hashlib

import re

from .. import errors

# data:<type>/<subtype>;base64,<data> and nothing else: a URL with other parameters (;charset=...) is refused.
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);(?i:base64),(.+)\Z", re.DOTALL)


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a base64 `data:` URL, the type lower-cased; None when `url` is not one."""
    match = _DATA_URL.match(url)
    return (match[1].lower(), match[2]) if match is not None else None


def read_data_url(url: str, param: str) -> tuple[str, str]:
    """split_data_url for a URL the client sent as a `data:` URL: a malformed one is the client's mistake (400)."""
    parts = split_data_url(url)
    if parts is None:
        raise errors.InvalidRequest(f"{param}: a data: URL must look like data:<type>;base64,<data>", param=param)
    return parts


def image_url(image: object, param: str) -> str:
    """The URL of an `image_url` part's value: {"url": ...}, or (leniently) the URL string itself."""
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise errors.InvalidRequest(f"{param}.image_url.url must be a string", param=param)
    return url


def tool_call_id(msg: dict, i: int) -> str:
    """The id a `tool` message answers: clouds that pair results with calls by id cannot do without it."""
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise errors.InvalidRequest(f"messages[{i}].tool_call_id is required for a tool message",
                                    param=f"messages[{i}].tool_call_id")
    return call_id


def short_call_id(call_id: str, limit: int) -> str:
    """A tool-call id within a cloud's length limit (Bedrock's toolUseId: 64): a longer one (a Gemini call id
    carrying its thought signature) is cut and ended with a digest of the whole, the same for the call and its
    result, so they still pair up and two ids stay apart."""
    if len(call_id) <= limit:
        return call_id
    digest = hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()
    return f"{call_id[:limit - len(digest) - 1]}_{digest}"


def without_cache_control(items: list) -> list:
    """Messages (or tools) without the cache_control breakpoints an Anthropic client's request carries in the
    canonical form, for a cloud that has no place for them, in the form they have without breakpoints: a system
    prompt or a tool result as one text, a lone user text as a string. Copies: the request's own stay for a
    retry on a cloud that caches."""
    out = []
    for item in items:
        if "cache_control" in item:
            item = {k: v for k, v in item.items() if k != "cache_control"}
        content = item.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and "cache_control" in p for p in content):
            parts = [{k: v for k, v in p.items() if k != "cache_control"} for p in content]
            if item.get("role") in ("system", "tool"):
                item = {**item, "content": "\n".join(p["text"] for p in parts)}
            elif len(parts) == 1 and parts[0].get("type") == "text":
                item = {**item, "content": parts[0]["text"]}
            else:
                item = {**item, "content": parts}
        out.append(item)
    return out
