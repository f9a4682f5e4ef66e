"""`protocol: openai` — the OpenAI REST API under /v1, as api.openai.com serves it.

Routes: POST /v1/chat/completions (JSON or SSE), POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}; the
Responses API (responses.py): POST /v1/responses (JSON or SSE), GET and DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items.
Auth: `authorization: Bearer KEY` when the cloud has an api_key. Errors: {"error": {message, type, param, code}}.

Options (CloudSpec.options), to play an OpenAI-compatible reasoning server (vLLM or SGLang started with a
reasoning parser, serving DeepSeek-R1, Qwen3, QwQ...):
    reasoning_models: [ids]   chat completions of these models show their thinking before the answer, in
                              `choices[].message.<field>` and `choices[].delta.<field>`, counted in
                              `completion_tokens` (and `completion_tokens_details.reasoning_tokens`)
    reasoning_field: name     `reasoning_content` (vLLM before 0.10, SGLang, DeepSeek; the default) or `reasoning`
                              (newer vLLM)
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec, EmulatorConfigError
from ..embeddings import as_base64, as_floats, embed
from ..generate import conversation_seed, estimate_tokens
from ..text import prose_tokens
from . import openai_wire as wire
from . import responses
from .base import Call, CallContext
from .openai_validate import chat_request, check_dimensions, check_output_limit, embedding_request, parse_body

_STATUS_ERRORS = {  # what OpenAI answers for each status, when a fault gives no message
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "server_error", None),
    413: ("Request too large.", "invalid_request_error", "request_too_large"),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


_THOUGHT_PIECES = 12  # a reasoning server's thinking, in prose tokens (same conversation, same thoughts)
_THOUGHT_SALT = 0x766C  # thoughts drawn apart from the answer, which the same seed draws


def status_error(status: int, message: str | None = None) -> wire.ApiError:
    default, type_, code = _STATUS_ERRORS.get(status, ("The server could not answer.", "server_error", None))
    if status < 500 and status not in _STATUS_ERRORS:
        type_ = "invalid_request_error"
    return wire.ApiError(status, message or default, type_, None, code)


def retry_headers(retry_after: float | None, with_ms: bool = False) -> list[tuple[str, str]]:
    """`retry-after` in seconds; Azure also sends `retry-after-ms`."""
    if retry_after is None:
        return []
    text = str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:g}"
    return [("retry-after", text)] + ([("retry-after-ms", str(int(retry_after * 1000)))] if with_ms else [])


class OpenAIProtocol:
    name = "openai"

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        self.models = set(spec.models)
        self.responses = responses.ResponsesApi(f"{spec.name}\x00{spec.seed}")
        options = spec.options or {}
        self.reasoning_models = frozenset(options.get("reasoning_models") or ())
        self.reasoning_field = options.get("reasoning_field", "reasoning_content")
        if self.reasoning_field not in ("reasoning_content", "reasoning"):
            raise EmulatorConfigError(f"{spec.name}.options.reasoning_field: expected 'reasoning_content' or "
                                      "'reasoning'")

    def base_url(self, host: str, port: int) -> str:
        return f"http://{_client_host(host)}:{port}/v1"

    # --- what a request is ----------------------------------------------------------------------------------------

    def inspect(self, request: Request) -> Call:
        path = request.path.rstrip("/")
        if request.method == "POST" and path in ("/v1/chat/completions", "/v1/embeddings"):
            return body_call("chat" if path.endswith("completions") else "embeddings", request.body)
        if request.method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
            return Call("models")
        return responses_call(request, responses.route(path, "/v1"))

    # --- answers --------------------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str | None = None, retry_after: float | None = None) -> Response:
        return self.render_error(status_error(status, message), retry_after)

    def render_error(self, error: wire.ApiError, retry_after: float | None = None) -> Response:
        return wire.json_response(error.status, error.body(), retry_headers(retry_after) + _request_headers())

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        try:
            self.authenticate(request)
            if call.operation == "chat":
                return await self.chat(call.payload, ctx)
            if call.operation == "embeddings":
                return await self.embeddings(call.payload, ctx)
            if call.operation == "models":
                return self.models_answer(request.path.rstrip("/"))
            if call.operation.startswith("responses"):
                return await self.serve_responses(request, call, ctx, self.success_headers(ctx))
            raise wire.ApiError(404, f"Invalid URL ({request.method} {request.path})")
        except wire.ApiError as error:
            return self.render_error(error)

    async def serve_responses(self, request: Request, call: Call, ctx: CallContext, headers: list[tuple[str, str]],
                              model_name: str | None = None) -> Response | StreamResponse:
        api = self.responses
        response_id = call.payload if call.operation != "responses" else None
        if call.operation == "responses":
            if model_name is None and isinstance(call.payload, dict) and isinstance(call.payload.get("model"), str):
                self.check_model(call.payload["model"])
            return await api.create(call.payload, ctx, headers, model_name)
        if call.operation == "responses.input_items":
            return api.input_items(response_id, headers)
        return api.delete(response_id, headers) if request.method == "DELETE" else api.retrieve(response_id, headers)

    def authenticate(self, request: Request) -> None:
        if self.spec.api_key is None:
            return
        header = request.headers.get("authorization", "")
        if not header:
            raise wire.ApiError(401, "You didn't provide an API key. You need to provide your API key in an "
                                     "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        if header != f"Bearer {self.spec.api_key}":
            raise status_error(401)  # never echo the key back, not even masked

    def check_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise wire.ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                                param="model", code="model_not_found")

    async def chat(self, payload: Any, ctx: CallContext, *, azure: bool = False, model_name: str | None = None,
                   headers: list[tuple[str, str]] | None = None) -> Response | StreamResponse:
        """`model_name` set: the caller (Azure) resolved the model from the URL, so skip the model check."""
        if isinstance(payload, wire.ApiError):
            raise payload
        call = chat_request(payload, model_required=model_name is None)
        if model_name is None:
            self.check_model(call.inp.model)
        else:
            call.inp.model = model_name  # the reply depends on the deployment's model, not the body's label
        check_output_limit(payload, call.inp.model)
        gen = await ctx.generate(call.inp)
        thoughts = None
        if not azure and call.inp.model in self.reasoning_models:
            thoughts = prose_tokens(random.Random(conversation_seed(self.spec.seed, call.inp) ^ _THOUGHT_SALT),
                                    _THOUGHT_PIECES)
        meta = wire.ChatMeta(random.Random(ctx.request_key), model_name or call.inp.model, azure=azure,
                             thoughts=thoughts, reasoning_field=self.reasoning_field)
        headers = self.success_headers(ctx) if headers is None else headers
        if call.stream:
            chunks = wire.chat_stream(gen, meta, ctx.pacer, call.include_usage, call.obfuscation)
            return StreamResponse(200, chunks, wire.SSE_HEADERS + headers)
        await ctx.pacer.whole(gen.longest_choice_tokens + meta.thought_tokens)
        return Response(200, orjson.dumps(wire.chat_completion(gen, meta)), wire.JSON_HEADERS + headers)

    async def embeddings(self, payload: Any, ctx: CallContext, *, model_name: str | None = None,
                         headers: list[tuple[str, str]] | None = None) -> Response:
        if isinstance(payload, wire.ApiError):
            raise payload
        call = embedding_request(payload, model_required=model_name is None)
        if model_name is None:
            self.check_model(call.model)
        model = model_name or call.model
        check_dimensions(call, model, ctx.spec.embedding_dimensions)
        dims = call.dimensions or ctx.spec.embedding_dimensions
        vectors = [embed(model, item, dims) for item in call.inputs]
        rendered = [as_base64(v) if call.base64 else as_floats(v) for v in vectors]
        tokens = sum(len(i) if isinstance(i, list) else estimate_tokens(i) for i in call.inputs)
        await ctx.pacer.whole(0)
        body = wire.embeddings_body(model, rendered, tokens)
        headers = self.success_headers(ctx) if headers is None else headers
        return Response(200, orjson.dumps(body), wire.JSON_HEADERS + headers)

    def models_answer(self, path: str) -> Response:
        if path == "/v1/models":
            listing = {"object": "list", "data": [wire.model_object(m) for m in self.spec.models]}
            return wire.json_response(200, listing, _request_headers())
        model = path[len("/v1/models/"):]
        if self.models and model not in self.models:
            raise wire.ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        return wire.json_response(200, wire.model_object(model), _request_headers())

    def success_headers(self, ctx: CallContext) -> list[tuple[str, str]]:
        return [("x-request-id", "req_%032x" % (ctx.request_key & (2**128 - 1))),
                ("openai-processing-ms", str(int(ctx.pacer.ttft * 1000))), ("openai-version", "2020-10-01")]


def _request_headers() -> list[tuple[str, str]]:
    return [("x-request-id", "req_" + random.getrandbits(128).to_bytes(16, "big").hex())]


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def responses_call(request: Request, route: tuple[str, str | None] | None) -> Call:
    """A Responses API call: a create with its parsed body, or a retrieve / delete / list with the response id."""
    if route is None:
        return Call("other")
    operation, response_id = route
    if operation == "responses":
        return body_call("responses", request.body) if request.method == "POST" else Call("other")
    allowed = ("GET", "DELETE") if operation == "responses.get" else ("GET",)
    return Call(operation, False, response_id) if request.method in allowed else Call("other")


def body_call(operation: str, body: bytes) -> Call:
    """A chat or embeddings call with its parsed body (or the parse error, answered later in OpenAI's shape)."""
    try:
        payload: Any = parse_body(body)
    except wire.ApiError as exc:
        payload = exc
    stream = operation != "embeddings" and isinstance(payload, dict) and payload.get("stream") is True
    return Call(operation, stream, payload)
