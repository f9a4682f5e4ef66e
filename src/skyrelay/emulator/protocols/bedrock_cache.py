"""Converse's prompt caching (AWS's "Prompt caching for faster model inference" guide), for the emulator.

A `{"cachePoint": {"type": "default"}}` block in `toolConfig.tools`, `system` or a message's `content` marks the
prompt before it (in the order tools, system, messages) as cacheable. What is cached and read back is worked out
as for Anthropic's breakpoints (anthropic_cache.PromptCache: the longest cached prefix is read, the rest up to
the last point written, a minimum prefix length); the answer's usage reports `cacheReadInputTokens` and
`cacheWriteInputTokens` apart from `inputTokens`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .anthropic_cache import MAX_BREAKPOINTS, Breakpoint
from .bedrock_wire import validation

_CHARS_PER_TOKEN = 4
_LOOKBACK = 20


def cache_points(payload: dict[str, Any]) -> list[Breakpoint]:
    """Every cachePoint of a Converse body, in prompt order, with the size and hash of the prefix it ends."""
    digest = hashlib.blake2b(digest_size=16)
    length = 0
    found: list[Breakpoint] = []
    boundaries: list[tuple[int, bytes]] = []
    tools = (payload.get("toolConfig") or {}).get("tools") if isinstance(payload.get("toolConfig"), dict) else None
    sections = [tools or [], payload.get("system") or []]
    sections += [m.get("content") or [] for m in payload.get("messages") or () if isinstance(m, dict)]
    for blocks in sections:
        for block in blocks if isinstance(blocks, list) else ():
            if isinstance(block, dict) and "cachePoint" in block:
                if boundaries:
                    tokens, key = boundaries[-1]
                    found.append(Breakpoint(tokens, key, "5m", boundaries[-2:-_LOOKBACK - 2:-1]))
                continue
            piece = orjson.dumps(block)
            digest.update(piece)
            length += len(piece)
            boundaries.append((length // _CHARS_PER_TOKEN, digest.copy().digest()))
    if len(found) > MAX_BREAKPOINTS:
        raise validation(f"The number of cache points exceeds the maximum of {MAX_BREAKPOINTS}.")
    return found
