"""Anthropic Messages answers: the Message body, the SSE event stream, ids and headers.

Shapes follow the Messages API reference: a Message with content blocks (thinking, text, tool_use), `stop_reason`
and `usage`; a stream of `event: NAME` / `data: JSON` pairs (message_start, content_block_start, ping,
content_block_delta, content_block_stop, message_delta with cumulative usage, message_stop).
"""

from __future__ import annotations

import base64
import hashlib
import random
import string
from typing import Any, AsyncIterator

import orjson

from ..generate import ChoiceOut, Generation
from ..text import prose_tokens
from ..timing import Pacer

SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
JSON_HEADERS = [("content-type", "application/json")]
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_THINKING_TOKENS = 12


def anthropic_id(prefix: str, number: int) -> str:
    """Ids like msg_01XFDUDYJgAACzvnptvVoYEL: a prefix, "01", then 22 base62 characters (from `number`)."""
    number = int.from_bytes(hashlib.sha256(f"{prefix}{number}".encode()).digest()[:17], "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return f"{prefix}_01{''.join(chars)}"


class MessageMeta:
    """What every body and event of one reply shares."""

    __slots__ = ("id", "key", "model", "rng", "thinking", "prompt_filtered", "signer", "cache")

    def __init__(self, request_key: int, content_seed: int, model: str, thinking: bool,
                 prompt_filtered: bool = False, signer: Any = None, cache: dict[str, int] | None = None):
        self.id = anthropic_id("msg", request_key)
        self.key = request_key
        self.model = model
        self.rng = random.Random(content_seed)  # thinking text: same conversation, same thoughts
        self.thinking = thinking
        self.prompt_filtered = prompt_filtered  # a refusal before any output
        self.signer = signer  # signs thinking blocks (anthropic_cache.ThinkingSigner); None: random signatures
        self.cache = cache  # prompt-cache reads and writes of this request (anthropic_cache.PromptCache.account)


class _Block:
    """One content block of the reply, with the pieces it streams as."""

    __slots__ = ("start", "deltas", "final")

    def __init__(self, start: dict[str, Any], deltas: list[dict[str, Any]], final: dict[str, Any]):
        self.start, self.deltas, self.final = start, deltas, final


def _blocks(choice: ChoiceOut, meta: MessageMeta) -> list[_Block]:
    if meta.prompt_filtered:
        return []
    blocks = []
    if meta.thinking:
        pieces = prose_tokens(meta.rng, _THINKING_TOKENS)
        signature = meta.signer.sign("".join(pieces)) if meta.signer is not None else base64.b64encode(
            meta.rng.getrandbits(384).to_bytes(48, "big")).decode()
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(_Block({"type": "thinking", "thinking": "", "signature": ""}, deltas,
                             {"type": "thinking", "thinking": "".join(pieces), "signature": signature}))
    if choice.tokens:
        blocks.append(_Block({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in choice.tokens],
                             {"type": "text", "text": choice.text}))
    for call in choice.tool_calls:
        tool_id = anthropic_id("toolu", int(call.key, 16) ^ meta.key)  # unique per request, as real ids are
        try:
            arguments = orjson.loads(call.arguments) if call.arguments else {}
        except orjson.JSONDecodeError:  # cut short by max_tokens: the API keeps what parsed, here nothing
            arguments = {}
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": f} for f in call.fragments]
        blocks.append(_Block({"type": "tool_use", "id": tool_id, "name": call.name, "input": {}}, deltas,
                             {"type": "tool_use", "id": tool_id, "name": call.name, "input": arguments}))
    return blocks


def _output_tokens(choice: ChoiceOut, meta: MessageMeta) -> int:
    if meta.prompt_filtered:
        return 0
    return choice.completion_tokens + (_THINKING_TOKENS if meta.thinking else 0)


def usage(input_tokens: int, output_tokens: int, cache_read: int = 0,
          cache: dict[str, int] | None = None) -> dict[str, Any]:
    """`input_tokens` are the prompt's tokens neither read from nor written to the cache: Anthropic reports cache
    reads and writes apart. `cache` (breakpoint caching) overrides `cache_read` (the automatic prefix cache)."""
    write_5m = write_1h = 0
    if cache is not None:
        cache_read, write_5m, write_1h = cache["read"], cache["write_5m"], cache["write_1h"]
    return {
        "input_tokens": max(0, input_tokens - cache_read - write_5m - write_1h),
        "cache_creation_input_tokens": write_5m + write_1h, "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": output_tokens, "service_tier": "standard",
    }


def stop_reason(choice: ChoiceOut) -> str:
    if choice.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(choice.finish, "end_turn")


def message_body(gen: Generation, meta: MessageMeta) -> dict[str, Any]:
    choice = gen.choices[0]
    return {
        "id": meta.id, "type": "message", "role": "assistant", "model": meta.model,
        "content": [b.final for b in _blocks(choice, meta)],
        "stop_reason": "refusal" if meta.prompt_filtered else stop_reason(choice),
        "stop_sequence": choice.stop_sequence,
        "usage": usage(gen.prompt_tokens, _output_tokens(choice, meta), gen.cached_tokens, meta.cache),
    }


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(type_: str, message: str, request_id: str) -> bytes:
    """An error after the 200 status line (e.g. overloaded mid-stream)."""
    return sse("error", {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id})


async def message_stream(gen: Generation, meta: MessageMeta, pacer: Pacer) -> AsyncIterator[bytes]:
    """One SSE event per yield, paced like a model."""
    choice = gen.choices[0]
    start_usage = usage(gen.prompt_tokens, 1, gen.cached_tokens, meta.cache)  # the API reports a token or so already at message_start
    await pacer.first_token()
    yield sse("message_start", {"type": "message_start", "message": {
        "id": meta.id, "type": "message", "role": "assistant", "model": meta.model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
    step = 0
    for index, block in enumerate(_blocks(choice, meta)):
        yield sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block.start})
        if index == 0:
            yield sse("ping", {"type": "ping"})
        for delta in block.deltas:
            if step:
                await pacer.token(step)
            step += 1
            yield sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final_usage = usage(gen.prompt_tokens, _output_tokens(choice, meta), gen.cached_tokens, meta.cache)
    del final_usage["cache_creation"], final_usage["service_tier"]  # message_delta carries the counts only
    yield sse("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": "refusal" if meta.prompt_filtered else stop_reason(choice),
        "stop_sequence": choice.stop_sequence}, "usage": final_usage})
    yield sse("message_stop", {"type": "message_stop"})


MODEL_CREATED = "2025-01-01T00:00:00Z"  # fixed: listings stay byte-identical between runs


def model_object(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model.replace("-", " ").title(), "created_at": MODEL_CREATED}
