"""Anthropic's Messages API (kind `anthropic`): request.py builds the body, response.py and stream.py read the
answer, errors.py maps failures; this module only sends, over the deployment's pooled connection."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

# By name: `errors` in a package's namespace is its errors.py once imported (`from .errors import ...`).
from ...errors import UpstreamError
from ...canonical import ChatRequest, ChatResponse
from ..base import OpenedStream, Provider, as_int
from ..sse import SSEChunks
from .errors import anthropic_error
from .passthrough import BETA_QUERY, count_body, native_body, native_headers, whole_message
from .request import DEFAULT_MAX_TOKENS, HONOURED_EXTRAS, build_request
from .response import parse_message
from .passthrough_stream import PassThroughStream
from .stream import StreamDecoder

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"

_HEADER_SETS = 64  # (anthropic-version, anthropic-beta) pairs whose headers are kept built

__all__ = ["AnthropicProvider"]


class AnthropicProvider(Provider):
    kind = "anthropic"
    honoured_extras = HONOURED_EXTRAS
    speaks_anthropic = True

    def __init__(self, deployment: Any):
        super().__init__(deployment)
        options = deployment.options
        self.default_max_tokens = _positive_int(options.get("default_max_tokens"), DEFAULT_MAX_TOKENS)
        self.headers = [
            ("content-type", "application/json"), ("accept", "application/json"),
            ("anthropic-version", str(options.get("anthropic_version") or DEFAULT_VERSION)),
        ]
        if deployment.api_key:
            self.headers.append(("x-api-key", deployment.api_key.reveal()))
        self.headers += list(deployment.headers.items())
        self._native_headers: dict[tuple, list[tuple[str, str]]] = {}

    def endpoint(self) -> str:
        url = (self.deployment.base_url or DEFAULT_BASE_URL).rstrip("/")
        # A base URL given with the API's /v1 (as some SDKs are configured) must not become /v1/v1/messages.
        return url[:-3] if urlsplit(url).path.endswith("/v1") else url

    def native_headers(self, native) -> list[tuple[str, str]]:
        """The headers for a client's anthropic-version and anthropic-beta: built once per pair (a client sends
        the same ones on every request), a few pairs kept."""
        key = (native.version, native.beta)
        headers = self._native_headers.get(key)
        if headers is None:
            if len(self._native_headers) >= _HEADER_SETS:
                self._native_headers.clear()
            headers = self._native_headers[key] = native_headers(self.headers, native)
        return headers

    def build(self, req: ChatRequest) -> tuple[dict[str, Any], str | None]:
        return build_request(req, self.name, self.deployment.model, default_max_tokens=self.default_max_tokens)

    async def chat(self, req: ChatRequest) -> ChatResponse:
        native = req.anthropic
        if native is not None:
            raw, data = await self.post_json_read_raw(
                _path(native), self.native_headers(native), native_body(native, self.deployment.model, False))
            return whole_message(raw, data, self.name)
        body, json_tool = self.build(req)
        body.pop("stream", None)
        data = await self.post_json_read(MESSAGES_PATH, self.headers, body)
        return parse_message(data, self.name, json_tool)

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        native = req.anthropic
        if native is not None:
            resp = await self.post_json(
                _path(native), self.native_headers(native), native_body(native, self.deployment.model, True))
            return resp, PassThroughStream(self.name)
        body, json_tool = self.build(req)
        body["stream"] = True
        resp = await self.post_json(MESSAGES_PATH, self.headers, body)
        return resp, SSEChunks(StreamDecoder(self.name, json_tool, reasoning=True))

    async def count_tokens(self, native) -> int:
        path = COUNT_PATH + BETA_QUERY if native.beta_query else COUNT_PATH
        data = await self.post_json_read(path, self.native_headers(native),
                                         count_body(native, self.deployment.model))
        return as_int(data.get("input_tokens")) if isinstance(data, dict) else 0

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return anthropic_error(status, headers, body, self.name)


def _path(native) -> str:
    return MESSAGES_PATH + BETA_QUERY if native.beta_query else MESSAGES_PATH


def _positive_int(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default
