"""`protocol: anthropic` — the Anthropic Messages API, as api.anthropic.com serves it.

Routes: POST /v1/messages (JSON or SSE), POST /v1/messages/count_tokens, GET /v1/models, GET /v1/models/{id}.
Auth: `x-api-key: KEY` or `authorization: Bearer KEY` when the cloud has an api_key; an `anthropic-version`
header is required (any YYYY-MM-DD date, or only `options.anthropic_versions` when given). Errors:
{"type": "error", "error": {"type", "message"}, "request_id"} with a `request-id` header; 429 carries
`retry-after`; 529 is `overloaded_error`. A content_filter fault ends the reply with stop_reason "refusal".
Prompt caching (cache_control breakpoints) and thinking signatures behave as anthropic_cache.py describes;
`context_management` and `anthropic-beta` are accepted (the emulator edits no context).
Options: `anthropic_versions: [...]`; `cache_min_tokens: N` (the shortest cacheable prefix, default 1024);
`stream_errors: event` makes 429/5xx faults on streamed requests answer
200, send message_start, then `event: error` (how an overloaded API fails mid-stream); default `http`.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import orjson

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec, EmulatorConfigError
from ..generate import conversation_seed, json_text, prompt_tokens
from . import anthropic_wire as wire
from .anthropic_blocks import AnthropicError, invalid
from .anthropic_cache import PromptCache, ThinkingSigner, breakpoints
from .anthropic_validate import MessagesCall, messages_request, parse_body
from .base import Call, CallContext
from .json_output import as_json_choice, sample_json

_STATUS_ERRORS = {  # what the API answers for each status, when a fault gives no message
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit. Please reduce the prompt "
                              "length or the maximum tokens requested, or try again later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_OPTIONS = {"anthropic_versions", "stream_errors", "cache_min_tokens"}
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ORGANIZATION = "5c0e8f2a-9a4b-4d7e-8a51-0e6f3b1d2c4a"
_RATE_LIMIT = 4000


def status_error(status: int, message: str | None = None) -> AnthropicError:
    if status in _STATUS_ERRORS:
        type_, default = _STATUS_ERRORS[status]
    elif status >= 500:
        type_, default = "api_error", "The server could not answer."
    else:
        type_, default = "invalid_request_error", "Invalid request."
    return AnthropicError(status, type_, message or default)


class AnthropicProtocol:
    name = "anthropic"

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        self.models = set(spec.models)
        options = spec.options or {}
        unknown = set(options) - _OPTIONS
        if unknown:
            raise EmulatorConfigError(f"{spec.name}.options: unknown key(s) {sorted(unknown)} for protocol "
                                      f"anthropic; known: {sorted(_OPTIONS)}")
        versions = options.get("anthropic_versions")
        if versions is not None and not (isinstance(versions, list) and all(isinstance(v, str) for v in versions)):
            raise EmulatorConfigError(f"{spec.name}.options.anthropic_versions: expected a list of strings")
        self.versions = set(versions) if versions is not None else None
        self.stream_errors = options.get("stream_errors", "http")
        if self.stream_errors not in ("http", "event"):
            raise EmulatorConfigError(f"{spec.name}.options.stream_errors: expected 'http' or 'event'")
        min_tokens = options.get("cache_min_tokens", 1024)
        if type(min_tokens) is not int or min_tokens < 1:
            raise EmulatorConfigError(f"{spec.name}.options.cache_min_tokens: expected a positive integer")
        self.cache = PromptCache(min_tokens)
        self.signer = ThinkingSigner(f"{spec.name}:{spec.seed}")
        # The request just inspected, when it asks for a stream: the cloud calls `error_response` for a status
        # fault right after `inspect`, with no await in between, so this is that request's.
        self._streaming: dict[str, Any] | None = None

    def base_url(self, host: str, port: int) -> str:
        return f"http://{_client_host(host)}:{port}"  # the SDK's base_url: it adds /v1/messages

    # --- what a request is ----------------------------------------------------------------------------------------

    def inspect(self, request: Request) -> Call:
        path = request.path.rstrip("/")
        if request.method == "POST" and path in ("/v1/messages", "/v1/messages/count_tokens"):
            try:
                payload: Any = parse_body(request.body)
            except AnthropicError as exc:
                payload = exc
            if path.endswith("count_tokens"):
                self._streaming = None
                return Call("other", False, payload)
            stream = isinstance(payload, dict) and payload.get("stream") is True
            self._streaming = payload if stream else None
            return Call("chat", stream, payload)
        self._streaming = None
        if request.method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
            return Call("models")
        return Call("other")

    # --- answers --------------------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str | None = None,
                       retry_after: float | None = None) -> Response | StreamResponse:
        error = status_error(status, message)
        if self.stream_errors == "event" and self._streaming is not None and (status >= 500 or status == 429):
            return self.failing_stream(error, self._streaming)
        return self.render_error(error, retry_after)

    def failing_stream(self, error: AnthropicError, payload: dict[str, Any]) -> StreamResponse:
        """A 200 stream that starts a message and then fails with `event: error`, as an overloaded API does."""
        key = _fresh_key()
        model = payload.get("model") if isinstance(payload.get("model"), str) else "unknown"
        start = {"type": "message_start", "message": {
            "id": wire.anthropic_id("msg", key), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": wire.usage(len(json_text(payload.get("messages"))) // 4, 1)}}
        request_id = wire.anthropic_id("req", key)

        async def events():
            yield wire.sse("message_start", start)
            yield wire.error_event(error.type, error.message, request_id)

        return StreamResponse(200, events(), wire.SSE_HEADERS + [("request-id", request_id),
                                                                 ("anthropic-organization-id", _ORGANIZATION)])

    def render_error(self, error: AnthropicError, retry_after: float | None = None) -> Response:
        request_id = wire.anthropic_id("req", _fresh_key())
        body = {"type": "error", "error": {"type": error.type, "message": error.message}, "request_id": request_id}
        headers = wire.JSON_HEADERS + [("request-id", request_id), ("anthropic-organization-id", _ORGANIZATION)]
        if retry_after is not None:
            headers.append(("retry-after", str(max(int(retry_after + 0.999), 0))))  # whole seconds, rounded up
        if error.status == 429:
            headers += [("anthropic-ratelimit-requests-limit", str(_RATE_LIMIT)),
                        ("anthropic-ratelimit-requests-remaining", "0"),
                        ("anthropic-ratelimit-requests-reset", _rfc3339(time.time() + (retry_after or 1)))]
        return Response(error.status, orjson.dumps(body), headers)

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        path = request.path.rstrip("/")
        try:
            if call.operation == "other" and path != "/v1/messages/count_tokens":
                raise AnthropicError(404, "not_found_error", "Not Found")
            self.check_version(request)
            self.authenticate(request)
            if call.operation == "models":
                return self.models_answer(path, ctx)
            if isinstance(call.payload, AnthropicError):
                raise call.payload
            parsed = messages_request(call.payload, count_only=call.operation == "other")
            self.check_model(parsed.inp.model)
            if call.operation == "other":
                body = {"input_tokens": prompt_tokens(parsed.inp)}
                return Response(200, orjson.dumps(body), wire.JSON_HEADERS + self.success_headers(ctx))
            self.signer.check(call.payload.get("messages"))
            points = breakpoints(call.payload) if b'"cache_control"' in request.body else None
            return await self.messages(parsed, ctx, points)
        except AnthropicError as error:
            return self.render_error(error)

    def check_version(self, request: Request) -> None:
        version = request.headers.get("anthropic-version")
        if not version:
            raise invalid("anthropic-version: header is required")
        ok = version in self.versions if self.versions is not None else bool(_VERSION.match(version))
        if not ok:
            raise invalid(f"anthropic-version: invalid version \"{version}\"")

    def authenticate(self, request: Request) -> None:
        if self.spec.api_key is None:
            return
        key = request.headers.get("x-api-key")
        if key is not None:
            if key != self.spec.api_key:
                raise AnthropicError(401, "authentication_error", "invalid x-api-key")
            return
        header = request.headers.get("authorization")
        if header is None:
            raise AnthropicError(401, "authentication_error", "x-api-key header is required")
        if header != f"Bearer {self.spec.api_key}":  # never echo the key back, not even masked
            raise AnthropicError(401, "authentication_error", "Invalid bearer token")

    def check_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise AnthropicError(404, "not_found_error", f"model: {model}")

    async def messages(self, call: MessagesCall, ctx: CallContext, points: list | None = None
                       ) -> Response | StreamResponse:
        gen, meta = await generate_message(call, ctx, points, self.cache, self.signer)
        headers = self.success_headers(ctx)
        if call.stream:
            return StreamResponse(200, wire.message_stream(gen, meta, ctx.pacer), wire.SSE_HEADERS + headers)
        await ctx.pacer.whole(gen.completion_tokens)
        return Response(200, orjson.dumps(wire.message_body(gen, meta)), wire.JSON_HEADERS + headers)

    def models_answer(self, path: str, ctx: CallContext) -> Response:
        headers = wire.JSON_HEADERS + self.success_headers(ctx)
        if path == "/v1/models":
            data = [wire.model_object(m) for m in self.spec.models]
            listing = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                       "last_id": data[-1]["id"] if data else None}
            return Response(200, orjson.dumps(listing), headers)
        model = unquote(path[len("/v1/models/"):])
        if self.models and model not in self.models:
            raise AnthropicError(404, "not_found_error", f"model: {model}")
        return Response(200, orjson.dumps(wire.model_object(model)), headers)

    def success_headers(self, ctx: CallContext) -> list[tuple[str, str]]:
        reset = _rfc3339(time.time() + 60)
        return [("request-id", wire.anthropic_id("req", ctx.request_key >> 1)),
                ("anthropic-organization-id", _ORGANIZATION),
                ("anthropic-ratelimit-requests-limit", str(_RATE_LIMIT)),
                ("anthropic-ratelimit-requests-remaining", str(_RATE_LIMIT - 1)),
                ("anthropic-ratelimit-requests-reset", reset)]


def _fresh_key() -> int:
    return random.getrandbits(128)


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def generate_message(call, ctx: CallContext, points: list | None, cache: PromptCache, signer: ThinkingSigner
                           ) -> tuple[Any, wire.MessageMeta]:
    """The generated answer to a Messages call and what its wire form needs (cache accounting, thinking
    signatures, a JSON answer for a schema): shared by the Anthropic API and Claude on Vertex."""
    gen = await ctx.generate(call.inp)
    cached = cache.account(points, gen.prompt_tokens, time.monotonic()) if points else None
    seed = conversation_seed(ctx.spec.seed, call.inp)
    if call.json_schema is not None:
        value = sample_json(call.json_schema, random.Random(seed))
        gen = replace(gen, choices=[as_json_choice(gen.choices[0], value, call.inp.max_tokens)])
    meta = wire.MessageMeta(ctx.request_key, seed, call.inp.model, call.thinking, ctx.content_filter == "prompt",
                            signer, cached)
    return gen, meta
