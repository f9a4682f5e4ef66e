"""OpenAI's chat-completions and embeddings wire format, shared by the `openai` and `azure` protocols.

Shapes follow OpenAI's public OpenAPI description (CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
CreateEmbeddingResponse, ListModelsResponse, ErrorResponse). Azure OpenAI answers the same shapes with
content-filter annotations added; `azure=True` adds them (and drops the OpenAI-only stream `obfuscation`).
"""

from __future__ import annotations

import hashlib
import random
import string
import time
from typing import Any, AsyncIterator

import orjson

from skyrelay.net.server import Response

from ..generate import ChoiceOut, Generation
from ..timing import Pacer

JSON_HEADERS = [("content-type", "application/json")]
SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
_ALNUM = string.ascii_letters + string.digits
_DONE = b"data: [DONE]\n\n"
_SAFE = {"filtered": False, "severity": "safe"}
_FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


class ApiError(Exception):
    """An OpenAI-style error answer: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(obj), JSON_HEADERS + (headers or []))


def random_id(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(length))


def fingerprint(model: str) -> str:
    return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0
          ) -> dict[str, Any]:
    """`reasoning_tokens` are part of `completion_tokens` (OpenAI counts them there, and apart in the details)."""
    completion_tokens += reasoning_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens, "audio_tokens": 0, "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class ChatMeta:
    """The envelope every body and chunk of one completion shares."""

    __slots__ = ("id", "created", "model", "fingerprint", "azure", "tool_prefix", "thoughts", "reasoning_field")

    def __init__(self, rng: random.Random, model: str, azure: bool = False, thoughts: list[str] | None = None,
                 reasoning_field: str = "reasoning_content"):
        self.id = "chatcmpl-" + random_id(rng, 29)
        self.created = int(time.time())
        self.model = model
        self.fingerprint = fingerprint(model)
        self.azure = azure
        self.tool_prefix = "call_"
        # A reasoning server's thinking (vLLM / SGLang with a reasoning parser): shown in `reasoning_field` of
        # each message and delta, before the answer
        self.thoughts = thoughts
        self.reasoning_field = reasoning_field

    @property
    def thought_tokens(self) -> int:
        return len(self.thoughts) if self.thoughts else 0


def _tool_call(meta: ChatMeta, call) -> dict[str, Any]:
    return {"id": meta.tool_prefix + call.key, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


def _filter_results(filtered_category: str | None = None, output: bool = True) -> dict[str, Any]:
    results: dict[str, Any] = {c: dict(_SAFE) for c in _FILTER_CATEGORIES}
    if output:
        results["protected_material_code"] = {"filtered": False, "detected": False}
        results["protected_material_text"] = {"filtered": False, "detected": False}
    else:
        results["jailbreak"] = {"filtered": False, "detected": False}
    if filtered_category:
        results[filtered_category] = {"filtered": True, "severity": "medium"}
    return results


def prompt_filter_results() -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": _filter_results(output=False)}]


def chat_completion(gen: Generation, meta: ChatMeta) -> dict[str, Any]:
    """The non-streamed chat.completion body."""
    choices = []
    for c in gen.choices:
        message: dict[str, Any] = {"role": "assistant", "content": None if c.tool_calls else c.text,
                                   "refusal": None, "annotations": []}
        if c.tool_calls:
            message["tool_calls"] = [_tool_call(meta, call) for call in c.tool_calls]
        if meta.thoughts:
            message[meta.reasoning_field] = "".join(meta.thoughts)
        choice: dict[str, Any] = {"index": c.index, "message": message, "logprobs": None,
                                  "finish_reason": c.finish}
        if meta.azure:
            choice["content_filter_results"] = _filter_results("violence" if c.finish == "content_filter" else None)
        choices.append(choice)
    body: dict[str, Any] = {
        "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
        "choices": choices,
        "usage": usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens, meta.thought_tokens * len(choices)),
        "system_fingerprint": meta.fingerprint,
    }
    if meta.azure:
        body["prompt_filter_results"] = prompt_filter_results()
    else:
        body["service_tier"] = "default"
    return body


def _deltas(c: ChoiceOut, meta: ChatMeta) -> list[dict[str, Any]]:
    """The deltas of one choice, in order; the first carries the role, then come the thoughts (if any)."""
    thoughts = [{meta.reasoning_field: t} for t in meta.thoughts or ()]
    if not c.tool_calls:
        return [{"role": "assistant", "content": "", "refusal": None}, *thoughts] + [{"content": t} for t in c.tokens]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None, "refusal": None}, *thoughts] if thoughts \
        else []
    for i, call in enumerate(c.tool_calls):
        head = {"index": i, "id": meta.tool_prefix + call.key, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        deltas.append({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}
                      if i == 0 and not thoughts else {"tool_calls": [head]})
        deltas += [{"tool_calls": [{"index": i, "function": {"arguments": f}}]} for f in call.fragments]
    return deltas


async def chat_stream(gen: Generation, meta: ChatMeta, pacer: Pacer, include_usage: bool,
                      obfuscation: bool) -> AsyncIterator[bytes]:
    """SSE events of a streamed completion, one event per yield, paced like a model."""
    rng = random.Random(meta.id)

    def event(choices: list[dict[str, Any]], usage_value: Any = None) -> bytes:
        chunk: dict[str, Any] = {"id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
                                 "model": meta.model, "system_fingerprint": meta.fingerprint, "choices": choices}
        if not meta.azure:
            chunk["service_tier"] = "default"
        if include_usage:
            chunk["usage"] = usage_value
        if obfuscation and not meta.azure:  # OpenAI pads chunks to hide token lengths from eavesdroppers
            chunk["obfuscation"] = random_id(rng, rng.randint(2, 12))
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def choice(index: int, delta: dict[str, Any], finish: str | None, filters: Any = None) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if meta.azure:
            item["content_filter_results"] = filters if filters is not None else {}
        return item

    await pacer.first_token()
    if meta.azure:  # Azure opens with a choice-less chunk reporting the prompt filter, envelope fields empty
        yield b"data: " + orjson.dumps({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                                        "prompt_filter_results": prompt_filter_results()}) + b"\n\n"
    per_choice = [_deltas(c, meta) for c in gen.choices]
    steps = max(len(d) for d in per_choice)
    for step in range(steps):
        if step:
            await pacer.token(step)
        for c, deltas in zip(gen.choices, per_choice, strict=True):
            if step < len(deltas):
                filters = _filter_results() if (meta.azure and step and not c.tool_calls) else None
                yield event([choice(c.index, deltas[step], None, filters)])
    for c in gen.choices:
        filters = _filter_results("violence") if c.finish == "content_filter" else None
        yield event([choice(c.index, {}, c.finish, filters)])
    if include_usage:
        yield event([], usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens,
                              meta.thought_tokens * len(gen.choices)))
    yield _DONE


def embeddings_body(model: str, vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


MODEL_CREATED = 1_700_000_000  # a fixed date: listings stay byte-identical between runs


def model_object(model: str, owner: str = "system") -> dict[str, Any]:
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": owner}
