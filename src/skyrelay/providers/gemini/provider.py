"""The Gemini API (AI Studio) and Vertex AI providers: one wire format, two ways to address and authenticate.

Gemini API: `POST {base}/v1beta/models/{model}:generateContent` with an `x-goog-api-key` header.
Vertex AI:  `POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/
             publishers/google/models/{model}:generateContent` with a bearer token (see auth.py).
Streams use `:streamGenerateContent?alt=sse`. A base_url that already ends in an API version (/v1, /v1beta,
/v1beta1) is used as it is.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

from ... import errors
from ...canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from ..base import OpenedStream, Provider
from ..content import without_cache_control
from ..sse import SSEChunks
from .auth import token_source
from .embed import build_embed_request, parse_embed_response
from .failures import error_from_response
from .request import HONOURED_EXTRAS, build_request
from .response import parse_response
from .stream import StreamDecoder

GEMINI_ENDPOINT = "https://generativelanguage.googleapis.com"
_VERSIONED = re.compile(r"/v\d+(?:alpha|beta)?\d*\Z")


class GeminiProvider(Provider):
    kind = "gemini"
    honoured_extras = HONOURED_EXTRAS
    shows_thoughts = True
    default_version = "/v1beta"

    def __init__(self, deployment: Any):
        super().__init__(deployment)
        self.model_id = deployment.model.rsplit("/", 1)[-1]  # the bare model name: reported, and read for features
        base = "" if _VERSIONED.search(urlsplit(self.endpoint()).path) else self.default_version
        resource = f"{base}/{self.model_resource()}"
        self.generate_path = f"{resource}:generateContent"
        self.stream_path = f"{resource}:streamGenerateContent?alt=sse"
        self.embed_path = f"{resource}:batchEmbedContents"
        self.headers = [("content-type", "application/json"), *self.credential_headers(),
                        *deployment.headers.items()]

    def endpoint(self) -> str:
        return (self.deployment.base_url or GEMINI_ENDPOINT).rstrip("/")

    def model_resource(self) -> str:
        model = self.deployment.model
        return model if "/" in model else f"models/{model}"

    def credential_headers(self) -> list[tuple[str, str]]:
        key = self.deployment.api_key
        return [("x-goog-api-key", key.reveal())] if key else []

    async def request_headers(self) -> list[tuple[str, str]]:
        return self.headers

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        return error_from_response(status, headers, body, self.name)

    # --- chat ---------------------------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> ChatResponse:
        body = build_request(_uncached(req), self.name, self.kind, self.model_id)
        data = await self.post_json_read(self.generate_path, await self.request_headers(), body)
        return parse_response(data, self.name, self.model_id)

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        body = build_request(_uncached(req), self.name, self.kind, self.model_id)
        resp = await self.post_json(self.stream_path, await self.request_headers(), body)
        return resp, SSEChunks(StreamDecoder(self.name, self.model_id))

    # --- embeddings ---------------------------------------------------------------------------------------------

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        body = build_embed_request(req, self.model_resource(), f"deployment '{self.name}' ({self.kind})")
        data = await self.post_json_read(self.embed_path, await self.request_headers(), body)
        return parse_embed_response(data, req, self.model_id, self.name)


def _uncached(req: ChatRequest) -> ChatRequest:
    """An Anthropic client's request without its cache breakpoints (Gemini caches by other means): a copy, so a
    retry on a cloud that caches still has them."""
    native = req.anthropic
    if native is None or "cache_control" not in native.hints:
        return req
    req = copy.copy(req)
    req.messages = without_cache_control(req.messages)
    return req


class VertexProvider(GeminiProvider):
    kind = "vertex"
    default_version = "/v1"

    def __init__(self, deployment: Any):
        if not deployment.options.get("project"):
            raise ValueError(f"deployment '{deployment.name}' (vertex) needs options.project")
        self.token = token_source(deployment)  # first: a credential problem is a configuration error
        super().__init__(deployment)

    def location(self) -> str:
        return self.deployment.options.get("location") or self.deployment.region or "us-central1"

    def endpoint(self) -> str:
        if self.deployment.base_url:
            return self.deployment.base_url.rstrip("/")
        location = self.location()
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        return f"https://{host}"

    def model_resource(self) -> str:
        model = self.deployment.model
        if model.startswith("projects/"):  # a full resource name (e.g. a tuned model's endpoint)
            return model
        parent = f"projects/{self.deployment.options['project']}/locations/{self.location()}"
        return f"{parent}/{model}" if "/" in model else f"{parent}/publishers/google/models/{model}"

    def credential_headers(self) -> list[tuple[str, str]]:
        return []  # the bearer token is added per request: it is refreshed over time

    async def request_headers(self) -> list[tuple[str, str]]:
        return [*self.headers, await self.token.header()]

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        # Vertex serves embeddings through :predict, a different API; not offered here yet.
        return await Provider.embed(self, req)
