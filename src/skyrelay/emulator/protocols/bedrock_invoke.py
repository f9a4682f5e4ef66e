"""Bedrock's InvokeModel and InvokeModelWithResponseStream for Claude models: Anthropic's Messages body, natively.

From AWS's "Anthropic Claude Messages API" model-parameters page: the body is the Messages API's, without `model`
(it is in the URL) or `stream` (the operation decides), with `anthropic_version: "bedrock-2023-05-31"` required
and beta features listed in `anthropic_beta` (not a header). The answer is the Messages API's message; the stream
is an event stream whose `chunk` events carry each Messages event as base64 JSON in `bytes`, the last one
(message_stop) with `amazon-bedrock-invocationMetrics`. Prompt caching and thinking signatures behave as on
Anthropic's API (anthropic_cache.py). Keys the documented body does not have are refused, as Bedrock refuses
them: "extraneous key [metadata] is not permitted".
"""

from __future__ import annotations

import base64
import random
from typing import Any, AsyncIterator

import orjson

from skyrelay.net.server import Response, StreamResponse

from ..generate import conversation_seed, prompt_tokens
from . import anthropic_wire
from . import bedrock_eventstream as es
from . import bedrock_wire as wire
from .anthropic_blocks import AnthropicError
from .anthropic_cache import PromptCache, ThinkingSigner, breakpoints
from .anthropic_validate import messages_request
from .base import CallContext
from .bedrock_wire import validation

OPERATIONS = {"invoke": False, "invoke-with-response-stream": True}  # operation -> streamed
VERSION = "bedrock-2023-05-31"
# The Messages API's own fields Bedrock's body does not take.
_EXTRANEOUS = ("model", "stream", "metadata", "service_tier", "mcp_servers", "container", "inference_geo", "speed",
               "diagnostics")
_PADDING = wire._PADDING


class ClaudeInvoke:
    __slots__ = ("cache", "signer", "padding")

    def __init__(self, name: str, seed: int, padding: bool):
        self.cache = PromptCache()
        self.signer = ThinkingSigner(f"bedrock:{name}:{seed}")
        self.padding = padding

    async def serve(self, payload: dict[str, Any], raw: bytes, model: str, stream: bool, ctx: CallContext,
                    started: float, clock) -> Response | StreamResponse:
        if "claude" not in model:
            raise validation("Malformed input request: this emulator models InvokeModel for Claude models only")
        body = self.messages_body(payload, model)
        try:
            call = messages_request(body)
            self.signer.check(body.get("messages"))
            points = breakpoints(body) if b'"cache_control"' in raw else None
        except AnthropicError as error:
            raise validation(error.message) from None
        gen = await ctx.generate(call.inp)
        cache = self.cache.account(points, gen.prompt_tokens, clock()) if points else None
        meta = anthropic_wire.MessageMeta(ctx.request_key, conversation_seed(ctx.spec.seed, call.inp), model,
                                          call.thinking, False, self.signer, cache)
        headers = wire.base_headers(wire.request_id(ctx.request_key))
        if stream:
            events = self.chunks(anthropic_wire.message_stream(gen, meta, ctx.pacer), gen, started, clock,
                                 random.Random(ctx.request_key))
            return StreamResponse(200, events, [("content-type", es.CONTENT_TYPE)] + headers)
        await ctx.pacer.whole(gen.completion_tokens)
        message = anthropic_wire.message_body(gen, meta)
        headers += [("x-amzn-bedrock-input-token-count", str(message["usage"]["input_tokens"])),
                    ("x-amzn-bedrock-output-token-count", str(message["usage"]["output_tokens"])),
                    ("x-amzn-bedrock-invocation-latency", str(int((clock() - started) * 1000)))]
        return Response(200, orjson.dumps(message), wire.JSON_HEADERS + headers)

    def count(self, payload: dict[str, Any], model: str) -> Response:
        """CountTokens: {"input": {"invokeModel": {"body": base64 of an InvokeModel body}}} -> {"inputTokens"}.
        (Its other input, a Converse request, is not modelled here.)"""
        inp = payload.get("input")
        invoke = inp.get("invokeModel") if isinstance(inp, dict) else None
        if not isinstance(invoke, dict) or not isinstance(invoke.get("body"), str):
            raise validation("Malformed input request: input.invokeModel.body is required by this emulator")
        if "claude" not in model:
            raise validation("Malformed input request: this emulator counts tokens for Claude models only")
        try:
            body = orjson.loads(base64.b64decode(invoke["body"], validate=True))
        except (ValueError, orjson.JSONDecodeError):
            raise validation("Malformed input request: input.invokeModel.body is not base64 JSON") from None
        if not isinstance(body, dict):
            raise validation("Malformed input request: expected a JSON object")
        try:
            call = messages_request(self.messages_body(body, model))
        except AnthropicError as error:
            raise validation(error.message) from None
        return Response(200, orjson.dumps({"inputTokens": prompt_tokens(call.inp)}), list(wire.JSON_HEADERS))

    def messages_body(self, payload: dict[str, Any], model: str) -> dict[str, Any]:
        """The Messages API body this InvokeModel body stands for (checked for what Bedrock's body may hold)."""
        version = payload.get("anthropic_version")
        if version != VERSION:
            raise validation(f"anthropic_version: must be \"{VERSION}\"" if version is not None
                             else "required key [anthropic_version] not found")
        betas = payload.get("anthropic_beta")
        if betas is not None and not (isinstance(betas, list) and all(isinstance(b, str) for b in betas)):
            raise validation("anthropic_beta: expected a list of strings")
        for key in _EXTRANEOUS:
            if key in payload:
                raise validation(f"extraneous key [{key}] is not permitted")
        body = {k: v for k, v in payload.items() if k not in ("anthropic_version", "anthropic_beta")}
        body["model"] = model
        return body

    async def chunks(self, events: AsyncIterator[bytes], gen: Any, started: float, clock,
                     rng: random.Random) -> AsyncIterator[bytes]:
        """Each Messages SSE event as an event-stream `chunk`."""
        async for sse in events:
            data = orjson.loads(sse[sse.index(b"\ndata: ") + 7:].rstrip(b"\n"))
            if data.get("type") == "message_stop":
                latency = int((clock() - started) * 1000)
                data["amazon-bedrock-invocationMetrics"] = {
                    "inputTokenCount": gen.prompt_tokens, "outputTokenCount": gen.choices[0].completion_tokens,
                    "invocationLatency": latency, "firstByteLatency": latency}
            chunk: dict[str, Any] = {"bytes": base64.b64encode(orjson.dumps(data)).decode()}
            if self.padding:
                chunk["p"] = _PADDING[: rng.randint(1, len(_PADDING))]
            yield es.event("chunk", orjson.dumps(chunk))

