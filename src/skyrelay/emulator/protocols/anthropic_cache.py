"""What Anthropic's Messages API does with prompt-caching breakpoints and thinking signatures, for the emulator.

Prompt caching (Anthropic's "prompt caching" guide): a `cache_control: {"type": "ephemeral", "ttl"?: "5m"|"1h"}`
on a tool, a system block or a message content block marks the prompt up to and including that block (in the
order tools, system, messages) as cacheable; at most 4 breakpoints. A prefix shorter than the model's minimum
(1024 tokens here; `options.cache_min_tokens`) is not cached. A cached prefix is looked for at each breakpoint
and up to 20 blocks before it (so a conversation that moves its breakpoint to the newest turn still reads the
turns cached before); the longest prefix found is a read (`cache_read_input_tokens`); the rest up to the last breakpoint is written (`cache_creation_input_tokens`,
split by TTL in `cache_creation`); what follows the last breakpoint is plain `input_tokens`.

Thinking signatures (the "extended thinking" guide): each thinking block the model returns carries a `signature`
that the API verifies when the block is sent back in a later request; a block whose thinking or signature was
changed is refused. Here a signature is a keyed hash of the thinking text, so the check is exact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from .anthropic_blocks import invalid

MAX_BREAKPOINTS = 4
_TTLS = {"5m": 300.0, "1h": 3600.0}
_CHARS_PER_TOKEN = 4
_MAX_ENTRIES = 20_000


_LOOKBACK = 20


class Breakpoint:
    __slots__ = ("tokens", "key", "ttl", "earlier")

    def __init__(self, tokens: int, key: bytes, ttl: str, earlier: list[tuple[int, bytes]]):
        self.tokens, self.key, self.ttl = tokens, key, ttl
        self.earlier = earlier  # (tokens, hash) of the prefixes ending at the blocks before it, nearest first


def breakpoints(data: dict[str, Any]) -> list[Breakpoint]:
    """Every cache_control breakpoint of a (validated) request, in prompt order, with its prefix's size and hash."""
    digest = hashlib.blake2b(digest_size=16)
    length = 0
    found: list[Breakpoint] = []
    boundaries: list[tuple[int, bytes]] = []  # (tokens, hash) of the prompt up to the end of each block

    def take(block: Any, where: str) -> None:
        nonlocal length
        piece = orjson.dumps({k: v for k, v in block.items() if k != "cache_control"}) if isinstance(
            block, dict) else orjson.dumps(block)
        digest.update(piece)
        length += len(piece)
        control = block.get("cache_control") if isinstance(block, dict) else None
        boundary = (length // _CHARS_PER_TOKEN, digest.copy().digest())
        if control is not None:
            earlier = boundaries[-1:-_LOOKBACK - 1:-1]
            found.append(Breakpoint(boundary[0], boundary[1], _ttl(control, where), earlier))
        boundaries.append(boundary)

    for i, tool in enumerate(data.get("tools") or ()):
        take(tool, f"tools.{i}")
    system = data.get("system")
    if isinstance(system, str):
        take({"type": "text", "text": system}, "system")
    for i, block in enumerate(system if isinstance(system, list) else ()):
        take(block, f"system.{i}")
    for i, message in enumerate(data.get("messages") or ()):
        digest.update(str(message.get("role")).encode())
        content = message.get("content")
        if isinstance(content, str):
            take({"type": "text", "text": content}, f"messages.{i}.content")
            continue
        for j, block in enumerate(content or ()):
            take(block, f"messages.{i}.content.{j}")
    if len(found) > MAX_BREAKPOINTS:
        raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                      f"Found {len(found)}.")
    return found


def _ttl(control: Any, where: str) -> str:
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in _TTLS:
        raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return ttl


class PromptCache:
    """The prefixes one cloud has cached, each until its TTL runs out (a hit refreshes it)."""

    __slots__ = ("min_tokens", "_expiry")

    def __init__(self, min_tokens: int = 1024):
        self.min_tokens = min_tokens
        self._expiry: dict[bytes, float] = {}

    def account(self, points: list[Breakpoint], prompt_tokens: int, now: float) -> dict[str, int]:
        """{read, write, write_5m, write_1h} for a request with these breakpoints; the written ones remembered."""
        out = {"read": 0, "write": 0, "write_5m": 0, "write_1h": 0}
        points = [p for p in points if p.tokens >= self.min_tokens]
        if not points:
            return out
        read = 0
        for point in reversed(points):
            for tokens, key in ((point.tokens, point.key), *point.earlier):
                if tokens > read and self._expiry.get(key, 0.0) > now:
                    self._expiry[key] = now + _TTLS[point.ttl]  # a hit refreshes the entry
                    read = min(tokens, prompt_tokens)
                    break
        done = read
        for point in points:
            self._expiry.pop(point.key, None)
            self._expiry[point.key] = now + _TTLS[point.ttl]
            tokens = min(point.tokens, prompt_tokens)
            if tokens > done:
                out["write"] += tokens - done
                out["write_1h" if point.ttl == "1h" else "write_5m"] += tokens - done
                done = tokens
        out["read"] = read
        if len(self._expiry) > _MAX_ENTRIES:
            for key in [k for k, when in self._expiry.items() if when <= now] or list(self._expiry)[:1000]:
                del self._expiry[key]
        return out


class ThinkingSigner:
    """Signs the thinking blocks a cloud returns and verifies them when a client sends them back."""

    __slots__ = ("_key",)

    def __init__(self, secret: str):
        self._key = hashlib.sha256(secret.encode()).digest()

    def sign(self, thinking: str) -> str:
        mac = hmac.new(self._key, thinking.encode(), hashlib.sha384).digest()
        return base64.b64encode(mac).decode()

    def check(self, messages: Any) -> None:
        """Every thinking block in the history must carry the signature this cloud gave it."""
        for i, message in enumerate(messages or ()):
            content = message.get("content") if isinstance(message, dict) else None
            if message.get("role") != "assistant" or not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                if not isinstance(block, dict) or block.get("type") != "thinking":
                    continue
                if not hmac.compare_digest(self.sign(str(block.get("thinking"))), str(block.get("signature"))):
                    raise invalid(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
