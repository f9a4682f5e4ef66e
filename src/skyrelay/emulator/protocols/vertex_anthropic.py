"""`protocol: vertex_anthropic` — Claude on Vertex AI, as {location}-aiplatform.googleapis.com serves it.

From Anthropic's "Claude on Vertex AI" guide and Google's "Request predictions with Claude models" and "Count
tokens for Claude models" pages:
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict        a whole message
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:streamRawPredict  Anthropic's SSE events
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/count-tokens:rawPredict  {"input_tokens": N}
The body is the Messages API's with two differences: no `model` (the URL names it; count-tokens alone takes it in
the body) and `anthropic_version: "vertex-2023-10-16"` in the body rather than a header (the anthropic SDK 2.x sends its
dated API version there instead: both are accepted); betas come in the
`anthropic-beta` header. Auth is `authorization: Bearer TOKEN` (the cloud's api_key is the one valid token).
The platform's errors (credentials, permissions, unknown models, quota) are Google's
{"error": {"code", "message", "status"}}; the model's own (validation, overload) are Anthropic's
{"type": "error", "error": {...}}. Prompt caching and thinking signatures behave as on Anthropic's API
(anthropic_cache.py). Options: `project`, `location` (restrict the routes, 403 otherwise), `cache_min_tokens`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec, EmulatorConfigError
from ..generate import prompt_tokens
from . import anthropic_wire as wire
from . import gemini_errors
from .anthropic import generate_message, status_error
from .anthropic_blocks import AnthropicError, invalid
from .anthropic_cache import PromptCache, ThinkingSigner, breakpoints
from .anthropic_validate import messages_request, parse_body
from .base import Call, CallContext
from .gemini_errors import GoogleError

VERSION = "vertex-2023-10-16"
_ROUTE = re.compile(r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/([^/]+)/models/([^/:]+)"
                    r":(rawPredict|streamRawPredict)$")
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}\Z")  # what anthropic SDK 2.x's AnthropicVertex sends (its API version)
_COUNT_MODEL = "count-tokens"
_OPTIONS = {"project", "location", "cache_min_tokens"}
_SERVICE = "aiplatform.googleapis.com"
# Statuses the model itself answers (in Anthropic's shape); the platform answers every other one in Google's.
_MODEL_STATUSES = (400, 413, 529)


class Route:
    __slots__ = ("project", "location", "publisher", "model", "method")

    def __init__(self, match: re.Match):
        self.project, self.location, self.publisher, self.model, self.method = match.group(2, 3, 4, 5, 6)

    @property
    def resource(self) -> str:
        return (f"projects/{self.project}/locations/{self.location}/publishers/{self.publisher}/models/"
                f"{self.model}")


class VertexAnthropicProtocol:
    name = "vertex_anthropic"
    vertex = True  # capacity refusals are Vertex's 429 RESOURCE_EXHAUSTED (capacity_wire.py)

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        self.models = set(spec.models)
        options = spec.options or {}
        unknown = set(options) - _OPTIONS
        if unknown:
            raise EmulatorConfigError(f"{spec.name}.options: unknown key(s) {sorted(unknown)} for protocol "
                                      f"vertex_anthropic; known: {sorted(_OPTIONS)}")
        for key in ("project", "location"):
            if options.get(key) is not None and not isinstance(options[key], str):
                raise EmulatorConfigError(f"{spec.name}.options.{key}: expected a string")
        self.project, self.location = options.get("project"), options.get("location")
        min_tokens = options.get("cache_min_tokens", 1024)
        if type(min_tokens) is not int or min_tokens < 1:
            raise EmulatorConfigError(f"{spec.name}.options.cache_min_tokens: expected a positive integer")
        self.cache = PromptCache(min_tokens)
        self.signer = ThinkingSigner(f"vertex:{spec.name}:{spec.seed}")

    def base_url(self, host: str, port: int) -> str:
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1"  # AnthropicVertex's base_url: it adds /projects/... itself

    # --- what a request is ----------------------------------------------------------------------------------------

    def inspect(self, request: Request) -> Call:
        route = _route(request.path)
        if route is None or request.method != "POST":
            return Call("other")
        try:
            payload: Any = parse_body(request.body)
        except AnthropicError as exc:
            payload = exc
        if route.model == _COUNT_MODEL:
            return Call("other", False, payload)
        return Call("chat", route.method == "streamRawPredict", payload)

    # --- answers --------------------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str | None = None,
                       retry_after: float | None = None) -> Response:
        if status in _MODEL_STATUSES:
            return _anthropic_error(status_error(status, message))
        return gemini_errors.render(gemini_errors.status_error(status, message, retry_after, True))

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        route = _route(request.path)
        if route is None or request.method != "POST":
            return gemini_errors.not_found_page(request.path)
        try:
            self.authenticate(request, route)
            self.check_resource(route)
            if isinstance(call.payload, AnthropicError):
                raise call.payload
            body = self.messages_body(call.payload, route)
            parsed = messages_request(body, count_only=call.operation == "other")
            if call.operation == "other":
                self.check_model(parsed.inp.model, route)
                return Response(200, orjson.dumps({"input_tokens": prompt_tokens(parsed.inp)}), wire.JSON_HEADERS)
            self.signer.check(body.get("messages"))
            points = breakpoints(body) if b'"cache_control"' in request.body else None
            return await self.messages(parsed, call.stream, ctx, points)
        except AnthropicError as error:
            return _anthropic_error(error)
        except GoogleError as error:
            return gemini_errors.render(error)

    def authenticate(self, request: Request, route: Route) -> None:
        if self.spec.api_key is None:
            return
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or len(header) == 7:
            raise GoogleError(401, gemini_errors.status_error(401, None, None, True).message, [
                gemini_errors.error_info("CREDENTIALS_MISSING", _SERVICE,
                                         method="google.cloud.aiplatform.v1.PredictionService.RawPredict")])
        if header[7:] != self.spec.api_key:  # never echo the token back
            raise GoogleError(401, gemini_errors.status_error(401, None, None, True).message)

    def check_resource(self, route: Route) -> None:
        if (self.project is not None and route.project != self.project) or (
                self.location is not None and route.location != self.location):
            raise GoogleError(403, f"Permission 'aiplatform.endpoints.predict' denied on resource "
                                   f"'//aiplatform.googleapis.com/{route.resource}' (or it may not exist).",
                              [gemini_errors.error_info("IAM_PERMISSION_DENIED", _SERVICE,
                                                        permission="aiplatform.endpoints.predict",
                                                        resource=route.resource)])
        if route.publisher != "anthropic":
            raise GoogleError(404, f"Publisher Model `{route.resource}` was not found.")
        if route.model != _COUNT_MODEL:
            self.check_model(route.model, route)

    def check_model(self, model: str, route: Route) -> None:
        if self.models and model not in self.models:
            raise GoogleError(404, f"Publisher Model `projects/{route.project}/locations/{route.location}/"
                                   f"publishers/anthropic/models/{model}` was not found or your project does not "
                                   f"have access to it.")

    def messages_body(self, payload: dict[str, Any], route: Route) -> dict[str, Any]:
        """The Messages API body this Vertex body stands for: version checked, the model from the URL."""
        version = payload.get("anthropic_version")
        if version != VERSION and not (isinstance(version, str) and _DATED.match(version)):
            raise invalid(f"anthropic_version: Input should be '{VERSION}'" if version is not None
                          else "anthropic_version: Field required")
        body = {key: value for key, value in payload.items() if key != "anthropic_version"}
        if route.model == _COUNT_MODEL:
            return body  # names its model in the body
        if "model" in body:
            raise invalid("model: Extra inputs are not permitted")
        body["model"] = route.model
        body.pop("stream", None)  # the method decides
        return body

    async def messages(self, call, stream: bool, ctx: CallContext, points: list | None
                       ) -> Response | StreamResponse:
        gen, meta = await generate_message(call, ctx, points, self.cache, self.signer)
        if stream:
            return StreamResponse(200, wire.message_stream(gen, meta, ctx.pacer), list(wire.SSE_HEADERS))
        await ctx.pacer.whole(gen.completion_tokens)
        return Response(200, orjson.dumps(wire.message_body(gen, meta)), list(wire.JSON_HEADERS))


def _route(path: str) -> Route | None:
    match = _ROUTE.match(unquote(path))
    return Route(match) if match else None


def _anthropic_error(error: AnthropicError) -> Response:
    body = {"type": "error", "error": {"type": error.type, "message": error.message}}
    return Response(error.status, orjson.dumps(body), list(wire.JSON_HEADERS))
