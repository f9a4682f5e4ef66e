"""GenerateContentResponse bodies and streams, as the Gemini API and Vertex AI send them.

A stream is a series of whole GenerateContentResponse objects, each holding the next piece of text (Gemini sends
a few tokens per event, not one), the last with `finishReason` and the final `usageMetadata`. With `alt=sse`
each is an SSE `data:` event ended by CRLF CRLF, as Google's servers write them; without it the objects form
one JSON array written piece by piece. The Gemini API repeats the prompt's usage on every event; Vertex AI
sends usage only at the end and adds `createTime`.
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any, AsyncIterator

import orjson

from ..generate import ChoiceOut, Generation
from ..timing import Pacer

SSE_HEADERS = [("content-type", "text/event-stream"), ("x-content-type-options", "nosniff"),
               ("server", "scaffolding on HTTPServer2")]
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_THOUGHT_TOKENS_PER_PIECE = 4  # a summary is shorter than the thinking it sums up, which is billed whole
_CATEGORIES = ("HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_DANGEROUS_CONTENT", "HARM_CATEGORY_HARASSMENT",
               "HARM_CATEGORY_SEXUALLY_EXPLICIT")


class ReplyMeta:
    """What every body and event of one reply shares."""

    __slots__ = ("response_id", "model", "vertex", "create_time", "prompt_details", "prompt_filtered", "thoughts")

    def __init__(self, request_key: int, model: str, vertex: bool, text_tokens: int, media_tokens: int,
                 prompt_filtered: bool = False, thoughts: list[str] | None = None):
        raw = random.Random(request_key).getrandbits(168).to_bytes(21, "big")
        self.response_id = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        self.model = model
        self.vertex = vertex
        now = time.time()
        self.create_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        self.prompt_details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if media_tokens:
            self.prompt_details.append({"modality": "IMAGE", "tokenCount": media_tokens})
        self.prompt_filtered = prompt_filtered  # blocked before any output: promptFeedback, no candidates
        self.thoughts = thoughts  # the thought summary's pieces (includeThoughts), shown before each answer


def thought_tokens(meta: ReplyMeta) -> int:
    return len(meta.thoughts) * _THOUGHT_TOKENS_PER_PIECE if meta.thoughts else 0


def _envelope(meta: ReplyMeta, body: dict[str, Any]) -> dict[str, Any]:
    body["modelVersion"] = meta.model
    if meta.vertex:
        body["createTime"] = meta.create_time
    body["responseId"] = meta.response_id
    return body


def usage(meta: ReplyMeta, prompt: int, candidates: int | None, cached: int = 0) -> dict[str, Any]:
    """`promptTokenCount` includes the cached part, which `cachedContentTokenCount` reports; thinking is counted
    apart from the answer (`thoughtsTokenCount`), in the total."""
    out: dict[str, Any] = {"promptTokenCount": prompt}
    if cached:
        out["cachedContentTokenCount"] = cached
    thoughts = thought_tokens(meta) if candidates is not None else 0
    if candidates is not None:
        out["candidatesTokenCount"] = candidates
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    out["totalTokenCount"] = prompt + (candidates or 0) + thoughts
    out["promptTokensDetails"] = meta.prompt_details
    if meta.vertex:
        out["trafficType"] = "ON_DEMAND"
    return out


def _safety(blocked: bool) -> list[dict[str, Any]]:
    ratings = [{"category": c, "probability": "NEGLIGIBLE"} for c in _CATEGORIES]
    if blocked:
        ratings[1] = {"category": _CATEGORIES[1], "probability": "HIGH", "blocked": True}
    return ratings


def _parts(choice: ChoiceOut, tokens: list[str], calls: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": "".join(tokens)}] if tokens else []
    if calls:
        for call in choice.tool_calls:
            try:
                args = orjson.loads(call.arguments) if call.arguments else {}
            except orjson.JSONDecodeError:  # cut by maxOutputTokens: Gemini sends no half-made call
                continue
            parts.append({"functionCall": {"name": call.name, "args": args}})
    return parts


def _thought_parts(meta: ReplyMeta) -> list[dict[str, Any]]:
    return [{"text": "".join(meta.thoughts), "thought": True}] if meta.thoughts else []


def _candidate(choice: ChoiceOut, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    out: dict[str, Any] = {"content": content}
    if final:
        out["finishReason"] = _FINISH.get(choice.finish, "STOP")
        if choice.finish == "content_filter":
            out["safetyRatings"] = _safety(True)
    out["index"] = choice.index
    return out


def _blocked(gen: Generation, meta: ReplyMeta) -> dict[str, Any]:
    return _envelope(meta, {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _safety(True)},
                            "usageMetadata": usage(meta, gen.prompt_tokens, None, gen.cached_tokens)})


def response_body(gen: Generation, meta: ReplyMeta) -> dict[str, Any]:
    if meta.prompt_filtered:
        return _blocked(gen, meta)
    thought = _thought_parts(meta)
    candidates = [_candidate(c, thought + _parts(c, c.tokens, True), True) for c in gen.choices]
    return _envelope(meta, {"candidates": candidates,
                            "usageMetadata": usage(meta, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens)})


def _groups(choice: ChoiceOut, size: int) -> list[list[str]]:
    """The text pieces of each event; a reply of tool calls is one event."""
    if choice.tool_calls or not choice.tokens:
        return [[]]
    return [choice.tokens[i:i + size] for i in range(0, len(choice.tokens), size)]


async def stream_events(gen: Generation, meta: ReplyMeta, pacer: Pacer, tokens_per_event: int,
                        sse: bool) -> AsyncIterator[bytes]:
    """One event (an SSE event, or one element of the JSON array) per yield, paced like a model."""
    events = [(_blocked(gen, meta), 0)] if meta.prompt_filtered else _events(gen, meta, max(tokens_per_event, 1))
    await pacer.first_token()
    produced = 0
    for i, (body, tokens) in enumerate(events):
        produced += tokens
        if produced > 1:
            await pacer.token(produced - 1)  # an event is due when its last token is
        data = orjson.dumps(body)
        if sse:
            yield b"data: " + data + b"\r\n\r\n"
        else:
            yield (b"[" if i == 0 else b",\r\n") + data + (b"]" if i == len(events) - 1 else b"")


def _events(gen: Generation, meta: ReplyMeta, size: int) -> list[tuple[dict[str, Any], int]]:
    """Each event's body and the number of tokens it carries; choices advance side by side."""
    groups = [_groups(c, size) for c in gen.choices]
    steps = max(len(g) for g in groups)
    events = _thought_events(gen, meta, size)
    for step in range(steps):
        candidates = []
        tokens = 0
        for choice, pieces in zip(gen.choices, groups):
            if step < len(pieces):
                final = step == len(pieces) - 1
                candidates.append(_candidate(choice, _parts(choice, pieces[step], final), final))
                tokens = max(tokens, len(pieces[step]) or choice.completion_tokens)
        body: dict[str, Any] = {"candidates": candidates}
        if step == steps - 1:
            body["usageMetadata"] = usage(meta, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens)
        elif not meta.vertex:
            body["usageMetadata"] = usage(meta, gen.prompt_tokens, None, gen.cached_tokens)
        events.append((_envelope(meta, body), tokens))
    return events


def _thought_events(gen: Generation, meta: ReplyMeta, size: int) -> list[tuple[dict[str, Any], int]]:
    """The thought summary streams first, in its own events, before any of the answer."""
    pieces = meta.thoughts or []
    events = []
    for i in range(0, len(pieces), size):
        part = {"text": "".join(pieces[i:i + size]), "thought": True}
        body: dict[str, Any] = {"candidates": [{"content": {"parts": [part], "role": "model"}, "index": c.index}
                                               for c in gen.choices]}
        if not meta.vertex:
            body["usageMetadata"] = usage(meta, gen.prompt_tokens, None, gen.cached_tokens)
        events.append((_envelope(meta, body), min(size, len(pieces) - i)))
    return events
