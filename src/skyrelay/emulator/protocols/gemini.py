"""`protocol: gemini` (the Gemini API) and `protocol: vertex` (Gemini on Vertex AI).

Gemini API: POST /{v1|v1beta|v1alpha}/models/{model}:generateContent | :streamGenerateContent | :countTokens
| :embedContent | :batchEmbedContents (gemini_embed.py; Vertex embeds through :predict, not emulated), key in
`x-goog-api-key` (or `?key=`); a wrong key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as Google
answers it. Vertex AI: POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:<method>
with `authorization: Bearer TOKEN` (the cloud's api_key is the one valid token), or the express-mode route
/{v}/publishers/google/models/{model}:<method> with an API key. `options.project` / `options.location` restrict
Vertex to one project / location (403 otherwise). `options.tokens_per_event` (default 4) sets how many tokens
each stream event carries. Streams are SSE with `?alt=sse`, else one JSON array written piece by piece.
A content_filter fault blocks the prompt (promptFeedback) or cuts the reply with finishReason SAFETY.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec, EmulatorConfigError
from ..generate import Generation, conversation_seed, prompt_tokens
from ..text import prose_tokens
from . import gemini_errors as errors
from . import gemini_wire as wire
from .base import Call, CallContext
from .gemini_embed import EMBED_METHODS, embed_request, embeddings_body
from .gemini_errors import GoogleError
from .gemini_request import GenerateCall, generate_request, parse_body
from .json_output import as_enum_choice, as_json_choice, sample_json

_THOUGHT_PIECES = 12  # the length of a thought summary, in prose pieces (same conversation, same thoughts)
_THOUGHT_SALT = 0x7468  # thoughts drawn apart from the answer, which the same seed draws
_METHODS = "generateContent|streamGenerateContent|countTokens"
_GEMINI_ROUTE = re.compile(rf"^/(v1|v1beta|v1alpha)/models/([^/:]+):({_METHODS}|embedContent|batchEmbedContents)$")
_VERTEX_ROUTE = re.compile(rf"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/([^/]+)/models/"
                           rf"([^/:]+):({_METHODS})$")
_EXPRESS_ROUTE = re.compile(rf"^/(v1|v1beta1)/publishers/([^/]+)/models/([^/:]+):({_METHODS})$")
_MISSING_CREDENTIALS = ("Request is missing required authentication credential. Expected OAuth 2 access token, "
                        "login cookie or other valid authentication credential. See "
                        "https://developers.google.com/identity/sign-in/web/devconsole-project.")
_UNREGISTERED = ("Method doesn't allow unregistered callers (callers without established identity). Please use "
                 "API Key or other form of API consumer identity to call this API.")


class Route:
    __slots__ = ("version", "model", "method", "project", "location", "publisher")

    def __init__(self, version: str, model: str, method: str, project: str | None = None,
                 location: str | None = None, publisher: str = "google"):
        self.version, self.model, self.method = version, model, method
        self.project, self.location, self.publisher = project, location, publisher

    @property
    def resource(self) -> str:
        if self.project is None:
            return f"publishers/{self.publisher}/models/{self.model}"
        return f"projects/{self.project}/locations/{self.location}/publishers/{self.publisher}/models/{self.model}"


class GeminiProtocol:
    name = "gemini"
    vertex = False
    service = "generativelanguage.googleapis.com"

    known_options = frozenset({"tokens_per_event"})

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        self.models = set(spec.models)
        options = spec.options or {}
        unknown = set(options) - self.known_options
        if unknown:
            raise EmulatorConfigError(f"{spec.name}.options: unknown key(s) {sorted(unknown)} for protocol "
                                      f"{self.name}; known: {sorted(self.known_options)}")
        self.tokens_per_event = options.get("tokens_per_event", 4)
        if not isinstance(self.tokens_per_event, int) or isinstance(self.tokens_per_event, bool) or (
                self.tokens_per_event < 1):
            raise EmulatorConfigError(f"{spec.name}.options.tokens_per_event: expected a whole number >= 1")

    def base_url(self, host: str, port: int) -> str:
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"  # the SDK's base_url: it adds /v1beta/models/... itself

    def route(self, path: str) -> Route | None:
        match = _GEMINI_ROUTE.match(path)
        return Route(match[1], match[2], match[3]) if match else None

    def package(self, route: Route) -> str:
        return f"google.ai.generativelanguage.{route.version}"

    # --- what a request is ----------------------------------------------------------------------------------------

    def inspect(self, request: Request) -> Call:
        route = self.route(unquote(request.path))
        if route is None or request.method != "POST":
            return Call("other")
        try:
            payload: Any = parse_body(request.body)
        except GoogleError as exc:
            payload = exc
        operation = ("other" if route.method == "countTokens" else
                     "embeddings" if route.method in EMBED_METHODS else "chat")
        return Call(operation, route.method == "streamGenerateContent", payload)

    # --- answers --------------------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str | None = None, retry_after: float | None = None) -> Response:
        if status == 413 and message is None:
            return errors.too_large_page()
        return errors.render(errors.status_error(status, message, retry_after, self.vertex))

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        route = self.route(unquote(request.path))
        if route is None or request.method != "POST":
            return errors.not_found_page(request.path)
        query = parse_qs(request.query)
        sse = query.get("alt", [""])[0] == "sse"
        try:
            self.authenticate(request, query, route)
            self.check_resource(route)
            if isinstance(call.payload, GoogleError):
                raise call.payload
            if route.method in EMBED_METHODS:
                return await self.embed(call.payload, route, ctx)
            parsed = generate_request(call.payload, route.model, self.package(route),
                                      count_only=route.method == "countTokens")
            if route.method == "countTokens":
                return self.count_answer(parsed)
            return await self.generate(parsed, route, ctx, stream=call.stream, sse=sse)
        except GoogleError as error:
            return errors.render(error, in_array=call.stream and not sse)

    def authenticate(self, request: Request, query: dict[str, list[str]], route: Route) -> None:
        if self.spec.api_key is None:
            return
        key = request.headers.get("x-goog-api-key") or query.get("key", [None])[0]
        if key is None and request.headers.get("authorization", "").startswith("Bearer "):
            if request.headers["authorization"][7:] == self.spec.api_key:  # an OAuth token, as Gemini also takes
                return
            raise GoogleError(401, errors.status_error(401, None, None, False).message)
        if key is None:
            raise GoogleError(403, _UNREGISTERED)
        if key != self.spec.api_key:  # never echo the key back
            message = "API key not valid. Please pass a valid API key."
            raise GoogleError(400, message, [errors.error_info("API_KEY_INVALID", self.service), {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}])

    def check_resource(self, route: Route) -> None:
        if self.models and route.model not in self.models:
            raise GoogleError(404, f"models/{route.model} is not found for API version {route.version}, or is not "
                                   f"supported for {route.method}. Call ListModels to see the list of available "
                                   f"models and their supported methods.")

    def count_answer(self, parsed: GenerateCall) -> Response:
        total = prompt_tokens(parsed.inp)
        text = _text_tokens(parsed)
        details = [{"modality": "TEXT", "tokenCount": text}] + (
            [{"modality": "IMAGE", "tokenCount": total - text}] if total > text else [])
        body: dict[str, Any] = {"totalTokens": total, "promptTokensDetails": details}
        if self.vertex:
            body["totalBillableCharacters"] = sum(len(m.text) for m in parsed.inp.messages)
        return Response(200, orjson.dumps(body), list(errors.JSON_HEADERS))

    async def embed(self, payload: dict[str, Any], route: Route, ctx: CallContext) -> Response:
        batch = route.method == "batchEmbedContents"
        full = ctx.spec.embedding_dimensions
        items = embed_request(payload, route.model, self.package(route), full, batch=batch)
        await ctx.pacer.whole(0)
        body = embeddings_body(items, route.model, full, batch=batch)
        headers = [("server-timing", f"gfet4t7; dur={int(ctx.pacer.ttft * 1000)}")]
        return Response(200, orjson.dumps(body), errors.JSON_HEADERS + headers)

    async def generate(self, parsed: GenerateCall, route: Route, ctx: CallContext, *, stream: bool,
                       sse: bool) -> Response | StreamResponse:
        gen = await ctx.generate(parsed.inp)
        seed = conversation_seed(ctx.spec.seed, parsed.inp)
        gen = _structured(gen, parsed, seed)
        text = _text_tokens(parsed)
        thoughts = prose_tokens(random.Random(seed ^ _THOUGHT_SALT), _THOUGHT_PIECES) if parsed.thoughts else None
        meta = wire.ReplyMeta(ctx.request_key, route.model, self.vertex, text, gen.prompt_tokens - text,
                              prompt_filtered=ctx.content_filter == "prompt", thoughts=thoughts)
        headers = [("server-timing", f"gfet4t7; dur={int(ctx.pacer.ttft * 1000)}")]
        if stream:
            events = wire.stream_events(gen, meta, ctx.pacer, self.tokens_per_event, sse)
            base = wire.SSE_HEADERS if sse else errors.JSON_HEADERS
            return StreamResponse(200, events, base + headers)
        await ctx.pacer.whole(gen.longest_choice_tokens)
        return Response(200, orjson.dumps(wire.response_body(gen, meta)), errors.JSON_HEADERS + headers)


class VertexProtocol(GeminiProtocol):
    name = "vertex"
    vertex = True
    service = "aiplatform.googleapis.com"

    known_options = frozenset({"tokens_per_event", "project", "location"})

    def __init__(self, spec: CloudSpec):
        super().__init__(spec)
        self.project = spec.options.get("project")
        self.location = spec.options.get("location")
        for key in ("project", "location"):
            if spec.options.get(key) is not None and not isinstance(spec.options[key], str):
                raise EmulatorConfigError(f"{spec.name}.options.{key}: expected a string")

    def route(self, path: str) -> Route | None:
        match = _VERTEX_ROUTE.match(path)
        if match:
            return Route(match[1], match[5], match[6], match[2], match[3], match[4])
        match = _EXPRESS_ROUTE.match(path)
        return Route(match[1], match[3], match[4], publisher=match[2]) if match else None

    def package(self, route: Route) -> str:
        return f"google.cloud.aiplatform.{route.version}"

    def authenticate(self, request: Request, query: dict[str, list[str]], route: Route) -> None:
        if self.spec.api_key is None:
            return
        if route.project is None:  # express mode: an API key instead of a token
            key = request.headers.get("x-goog-api-key") or query.get("key", [None])[0]
            if key == self.spec.api_key:
                return
            if key is not None:
                raise GoogleError(400, "API key not valid. Please pass a valid API key.",
                                  [errors.error_info("API_KEY_INVALID", self.service)])
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or len(header) == 7:
            method = f"google.cloud.aiplatform.{route.version}.PredictionService.{route.method[0].upper()}" \
                     f"{route.method[1:]}"
            raise GoogleError(401, _MISSING_CREDENTIALS,
                              [errors.error_info("CREDENTIALS_MISSING", self.service, method=method)])
        if header[7:] != self.spec.api_key:
            raise GoogleError(401, errors.status_error(401, None, None, True).message)

    def check_resource(self, route: Route) -> None:
        wrong_place = route.project is not None and (
            (self.project is not None and route.project != self.project)
            or (self.location is not None and route.location != self.location))
        if wrong_place:
            raise GoogleError(403, f"Permission 'aiplatform.endpoints.predict' denied on resource "
                                   f"'//aiplatform.googleapis.com/{route.resource}' (or it may not exist).",
                              [errors.error_info("IAM_PERMISSION_DENIED", self.service,
                                                 permission="aiplatform.endpoints.predict",
                                                 resource=route.resource)])
        if route.publisher != "google" or (self.models and route.model not in self.models):
            where = route.resource if route.project else f"publishers/{route.publisher}/models/{route.model}"
            raise GoogleError(404, f"Publisher Model `{where}` was not found or your project does not have access "
                                   f"to it. Please ensure you are using a valid model version. For more information, "
                                   f"see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions")


def _text_tokens(parsed: GenerateCall) -> int:
    """The prompt's tokens without its media, for promptTokensDetails."""
    if not parsed.images:
        return prompt_tokens(parsed.inp)
    plain = [replace(m, images=0) for m in parsed.inp.messages]
    return prompt_tokens(replace(parsed.inp, messages=plain))


def _structured(gen: Generation, parsed: GenerateCall, seed: int) -> Generation:
    """JSON or enum replies for responseMimeType application/json / text/x.enum (same conversation, same reply)."""
    if parsed.mime_type == "text/plain":
        return gen
    rng = random.Random(seed)
    if parsed.mime_type == "text/x.enum":
        options = list((parsed.schema or {}).get("enum") or [])
        return replace(gen, choices=[as_enum_choice(c, options, rng) for c in gen.choices])
    choices = [as_json_choice(c, sample_json(parsed.schema, rng), parsed.inp.max_tokens) for c in gen.choices]
    return replace(gen, choices=choices)
