"""Automatic prompt-prefix caching, as OpenAI-style serving stacks do it: a prompt whose leading tokens were
seen on the same deployment within the TTL reports them as cached.

The prompt (tools, then each message's role and text) is cut into blocks of `block_tokens` (four characters a
token, the emulator's token estimate); each block boundary at or beyond `min_tokens` is one cacheable prefix,
kept by the hash of everything before it. The cached length is the longest such prefix still alive, so it comes
in `block_tokens` increments from `min_tokens` up (OpenAI: from 1024, in steps of 128). Seeing a prefix again
refreshes its TTL. The clock is injected: `now` is any monotonic number of seconds.
"""

from __future__ import annotations

import hashlib

import orjson

from .capacity_config import CacheSettings
from .generate import ChatInput

_CHARS_PER_TOKEN = 4
_MAX_ENTRIES = 50_000  # bounds memory under a flood of unique prompts; expired entries go first


class PrefixCache:
    __slots__ = ("settings", "_expiry")

    def __init__(self, settings: CacheSettings):
        self.settings = settings
        self._expiry: dict[bytes, float] = {}  # prefix hash -> when it is forgotten (insertion order: oldest first)

    def prefixes(self, inp: ChatInput) -> list[tuple[int, bytes]]:
        """(tokens, hash) of each cacheable prefix of the prompt, shortest first."""
        text = _prompt_text(inp)
        block = self.settings.block_tokens * _CHARS_PER_TOKEN
        first = -(-self.settings.min_tokens // self.settings.block_tokens) * block  # the first boundary >= min
        if len(text) < first:
            return []
        digest = hashlib.blake2b(digest_size=16)
        out: list[tuple[int, bytes]] = []
        done = 0
        for end in range(first, len(text) + 1, block):
            digest.update(text[done:end].encode())
            done = end
            out.append((end // _CHARS_PER_TOKEN, digest.digest()))
        return out

    def cached_tokens(self, prefixes: list[tuple[int, bytes]], now: float) -> int:
        """The length of the longest prefix still in the cache (0: a miss)."""
        for tokens, key in reversed(prefixes):
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return tokens
        return 0

    def remember(self, prefixes: list[tuple[int, bytes]], now: float) -> None:
        expiry = now + self.settings.ttl_s
        for _, key in prefixes:
            self._expiry.pop(key, None)  # re-inserted last: the dict stays ordered by age
            self._expiry[key] = expiry
        if len(self._expiry) > _MAX_ENTRIES:
            self._evict(now)

    def _evict(self, now: float) -> None:
        for key in [k for k, when in self._expiry.items() if when <= now]:
            del self._expiry[key]
        while len(self._expiry) > _MAX_ENTRIES:
            del self._expiry[next(iter(self._expiry))]


def _prompt_text(inp: ChatInput) -> str:
    parts = [orjson.dumps([t.name, t.description, t.parameters]).decode() for t in inp.tools]
    parts += [f"{m.role}\x1f{m.text}\x1f{m.images}" for m in inp.messages]
    return "\x1e".join(parts)
