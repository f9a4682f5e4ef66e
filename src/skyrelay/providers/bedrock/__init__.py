"""AWS Bedrock through the Converse and ConverseStream APIs, signed with SigV4, sent over our pooled client.

request.py builds the Converse body, response.py reads it back, stream.py decodes the binary event stream,
errors.py maps Bedrock's error types, auth.py holds credentials and signs. An Anthropic client's request to a
Claude model goes through InvokeModel with its own body instead (invoke.py). This module only wires them to HTTP.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

# By name: `errors` in a package's namespace is its errors.py once imported (`from .errors import ...`).
from ...errors import UpstreamError, UpstreamProtocolError
from ...canonical import ChatRequest, ChatResponse
from ..anthropic.passthrough import whole_message
from ..anthropic.request import hosted_request
from ..anthropic.response import parse_message
from ..anthropic.stream import StreamDecoder
from ..base import OpenedStream, Provider, as_int
from .auth import make_signer
from .errors import error_from_http
from .invoke import VERSION, InvokeStreamDecoder, count_tokens_body, dropped, invoke_body, speaks_anthropic
from .reasoning import family as reasoning_family, handed_back
from .request import HONOURED_EXTRAS, build_converse_body
from .response import parse_converse_response
from .stream import ConverseStreamDecoder

__all__ = ["BedrockProvider"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
_CONTENT_TYPE = [("content-type", "application/json")]


class BedrockProvider(Provider):
    kind = "bedrock"
    honoured_extras = HONOURED_EXTRAS

    def __init__(self, deployment: Any):
        if not deployment.region:
            raise ValueError(f"deployment '{deployment.name}': kind bedrock needs a region (requests are signed "
                             "for one)")
        super().__init__(deployment)
        # boto3 percent-encodes the whole model id (ARNs and profile ids hold ':' and '/'); so do we.
        model_path = f"/model/{quote(deployment.model, safe='')}"
        self.converse_path = model_path + "/converse"
        self.stream_path = model_path + "/converse-stream"
        self.invoke_path = model_path + "/invoke"
        self.invoke_stream_path = model_path + "/invoke-with-response-stream"
        self.count_path = model_path + "/count-tokens"
        self.speaks_anthropic = speaks_anthropic(deployment.model)
        self.caches = self.speaks_anthropic or "nova" in deployment.model  # models that take cachePoint blocks
        # Models that reason through Converse (DeepSeek-R1, gpt-oss, Nova 2): their thoughts are shown
        self.reasons = None if self.speaks_anthropic else reasoning_family(deployment.model)
        self.shows_thoughts = self.reasons is not None
        self.signer = make_signer(deployment, self.http.host_header)
        self.extra_headers = list(deployment.headers.items())

    def endpoint(self) -> str:
        return self.deployment.base_url or f"https://bedrock-runtime.{self.deployment.region}.amazonaws.com"

    async def chat(self, req: ChatRequest) -> ChatResponse:
        if req.anthropic is not None and self.speaks_anthropic:
            raw, data = await self.post_json_read_raw(self.invoke_path, _CONTENT_TYPE,
                                                      invoke_body(req.anthropic, self.name))
            return whole_message(raw, data, self.name)
        if self.thinks(req):
            body, json_tool = hosted_request(req, self.name, self.deployment.model, VERSION, stream=False)
            return parse_message(await self.post_json_read(self.invoke_path, _CONTENT_TYPE, body), self.name,
                                 json_tool)
        resp = await self.post_json(self.converse_path, _CONTENT_TYPE, self.converse_body(req))
        _, data = await self.read_json(resp)
        return parse_converse_response(data, self.deployment.model, _response_id(resp.headers), self.name)

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        if req.anthropic is not None and self.speaks_anthropic:
            resp = await self.post_json(self.invoke_stream_path, _CONTENT_TYPE, invoke_body(req.anthropic, self.name))
            await self._expect_event_stream(resp)
            return resp, InvokeStreamDecoder(self.name)
        if self.thinks(req):
            body, json_tool = hosted_request(req, self.name, self.deployment.model, VERSION, stream=False)
            resp = await self.post_json(self.invoke_stream_path, _CONTENT_TYPE, body)
            await self._expect_event_stream(resp)
            return resp, InvokeStreamDecoder(self.name, StreamDecoder(self.name, json_tool, reasoning=True))
        resp = await self.post_json(self.stream_path, _CONTENT_TYPE, self.converse_body(req))
        await self._expect_event_stream(resp)
        return resp, ConverseStreamDecoder(_response_id(resp.headers), self.deployment.model, self.name)

    def thinks(self, req: ChatRequest) -> bool:
        """Claude asked to reason, or handed its earlier signed thoughts: sent through InvokeModel with Anthropic's
        body, where thinking and its signatures are Anthropic's own (Converse would have to map both)."""
        return self.speaks_anthropic and (bool(req.thinking) or req.extra.get("reasoning_effort") not in (None, "none"))

    def converse_body(self, req: ChatRequest) -> dict:
        return build_converse_body(req, self.name, self.caches, self.reasons, self.deployment.model)

    def hands_back(self, block: dict) -> bool:
        """Converse takes back the reasoning this very model signed (reasoning.py)."""
        return self.reasons is not None and handed_back(block, self.deployment.model) is not None

    async def _expect_event_stream(self, resp) -> None:
        content_type = resp.headers.get("content-type", EVENT_STREAM)
        if not content_type.startswith(EVENT_STREAM):
            await resp.aclose()
            raise UpstreamProtocolError(
                f"deployment '{self.name}' answered {content_type!r} instead of an event stream", deployment=self.name)

    async def count_tokens(self, native) -> int:
        if not self.speaks_anthropic:  # Converse-shaped counting needs the canonical form: estimated instead
            return await Provider.count_tokens(self, native)
        data = await self.post_json_read(self.count_path, _CONTENT_TYPE, count_tokens_body(native, self.name))
        return as_int(data.get("inputTokens")) if isinstance(data, dict) else 0

    def dropped_native(self, native) -> tuple[str, ...]:
        if self.speaks_anthropic:
            return dropped(native)
        # Cache breakpoints become cachePoint blocks where the model caches (Nova): mapped, not dropped.
        return tuple(h for h in native.hints if h != "cache_control") if self.caches else native.hints

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return error_from_http(status, headers, body, self.name)

    def sign(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # Signed like boto3 signs: content-type, host, x-amz-date (+ the session token when there is one).
        return self.signer.sign(self.http.base_path + path, body, headers) + self.extra_headers


def _response_id(headers: dict[str, str]) -> str:
    """Bedrock's request id names the completion, so the client's id can be traced in AWS logs."""
    request_id = headers.get("x-amzn-requestid")
    return f"chatcmpl-{request_id}" if request_id else f"chatcmpl-{os.urandom(12).hex()}"
