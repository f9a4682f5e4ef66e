"""Claude on Vertex AI (kind `vertex_anthropic`): Anthropic's Messages API behind Google's publisher-model routes.

    POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/
         publishers/anthropic/models/{model}:rawPredict          (a whole message)
                                            :streamRawPredict    (Anthropic's SSE events)
    POST .../publishers/anthropic/models/count-tokens:rawPredict  (the body names the model)

The body is the Messages API's without `model` (the URL names it) and with `anthropic_version:
"vertex-2023-10-16"`; betas travel in the `anthropic-beta` header. Auth is a Google bearer token, from the same
credential sources as the `vertex` kind (gemini/auth.py). An Anthropic client's request passes through with its
body (cache_control, signed thinking, context_management, output_config, documents...); what only Anthropic's own
API runs (`mcp_servers`, `container`) is refused, so a deployment that runs it can serve; capacity and placement
hints Vertex has no place for are left out and named. An OpenAI client's request is built by the Anthropic
request builder. Errors come in two shapes: Anthropic's for the model's own refusals, Google's for the platform's
(quota, credentials, unknown models).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from ... import errors
from ...canonical import AnthropicNative, ChatRequest, ChatResponse
from ..base import OpenedStream, Provider, as_int
from ..gemini.auth import token_source
from ..gemini.failures import error_from_response as google_error
from ..sse import SSEChunks
from .errors import anthropic_error
from .passthrough import count_body, leave_out_sealed, whole_message
from .request import DEFAULT_MAX_TOKENS, HONOURED_EXTRAS, hosted_request
from .response import parse_message
from .passthrough_stream import PassThroughStream
from .stream import StreamDecoder

VERSION = "vertex-2023-10-16"
# Best effort: left out, named in x-skyrelay-dropped-params (capacity tiers and placement are Google's to decide).
DROPPED = frozenset({"service_tier", "inference_geo", "speed", "diagnostics"})
# Answer-changing, and only Anthropic's API runs them (remote MCP servers, the code-execution container).
REFUSED = frozenset({"mcp_servers", "container"})
_TAKEN_OUT = frozenset({"model", "stream"}) | DROPPED

__all__ = ["VertexAnthropicProvider"]


class VertexAnthropicProvider(Provider):
    kind = "vertex_anthropic"
    honoured_extras = HONOURED_EXTRAS
    speaks_anthropic = True

    def __init__(self, deployment: Any):
        if not deployment.options.get("project"):
            raise ValueError(f"deployment '{deployment.name}' (vertex_anthropic) needs options.project")
        self.token = token_source(deployment)  # first: a credential problem is a configuration error
        super().__init__(deployment)
        self.default_max_tokens = int(deployment.options.get("default_max_tokens") or DEFAULT_MAX_TOKENS)
        base = "" if urlsplit(self.endpoint()).path.endswith("/v1") else "/v1"
        parent = f"{base}/projects/{deployment.options['project']}/locations/{self.location()}/publishers/anthropic"
        model = f"{parent}/models/{quote(deployment.model, safe='@')}"
        self.predict_path = model + ":rawPredict"
        self.stream_path = model + ":streamRawPredict"
        self.count_path = f"{parent}/models/count-tokens:rawPredict"
        self.headers = [("content-type", "application/json"), *deployment.headers.items()]

    def location(self) -> str:
        return self.deployment.options.get("location") or self.deployment.region or "us-central1"

    def endpoint(self) -> str:
        if self.deployment.base_url:
            return self.deployment.base_url.rstrip("/")
        location = self.location()
        return "https://aiplatform.googleapis.com" if location == "global" else \
            f"https://{location}-aiplatform.googleapis.com"

    async def _headers(self, native: AnthropicNative | None) -> list[tuple[str, str]]:
        headers = [*self.headers, await self.token.header()]
        if native is not None and native.beta:
            headers.append(("anthropic-beta", native.beta))
        return headers

    # --- chat ---------------------------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> ChatResponse:
        native = req.anthropic
        if native is not None:
            raw, data = await self.post_json_read_raw(self.predict_path, await self._headers(native),
                                                      self.native_body(native, False))
            return whole_message(raw, data, self.name)
        body, json_tool = self.build(req, False)
        data = await self.post_json_read(self.predict_path, await self._headers(None), body)
        return parse_message(data, self.name, json_tool)

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        native = req.anthropic
        if native is not None:
            resp = await self.post_json(self.stream_path, await self._headers(native), self.native_body(native, True))
            return resp, PassThroughStream(self.name)
        body, json_tool = self.build(req, True)
        resp = await self.post_json(self.stream_path, await self._headers(None), body)
        return resp, SSEChunks(StreamDecoder(self.name, json_tool, reasoning=True))

    def build(self, req: ChatRequest, stream: bool) -> tuple[dict[str, Any], str | None]:
        return hosted_request(req, self.name, self.deployment.model, VERSION, stream=stream,
                              default_max_tokens=self.default_max_tokens)

    def native_body(self, native: AnthropicNative, stream: bool) -> dict[str, Any]:
        self._refuse(native.body)
        out = {key: value for key, value in native.body.items() if key not in _TAKEN_OUT}
        out["anthropic_version"] = VERSION
        if stream:
            out["stream"] = True
        if native.sealed:
            leave_out_sealed(out)
        return out

    def _refuse(self, body: dict[str, Any]) -> None:
        for name in REFUSED:
            if name in body:
                raise errors.UnsupportedFeature(
                    f"'{name}' is not supported by deployment '{self.name}' (vertex_anthropic): only Anthropic's "
                    "API runs it", param=name)

    def dropped_native(self, native: AnthropicNative) -> tuple[str, ...]:
        return tuple(name for name in native.body if name in DROPPED)

    # --- token counting -----------------------------------------------------------------------------------------

    async def count_tokens(self, native: AnthropicNative) -> int:
        self._refuse(native.body)
        body = count_body(native, self.deployment.model)  # this route names the model in the body
        body["anthropic_version"] = VERSION
        data = await self.post_json_read(self.count_path, await self._headers(native), body)
        return as_int(data.get("input_tokens")) if isinstance(data, dict) else 0

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        if _is_anthropic_error(body):
            return anthropic_error(status, headers, body, self.name)
        return google_error(status, headers, body, self.name)


def _is_anthropic_error(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("type") == "error"
