"""AWS Bedrock through the Converse and ConverseStream APIs, signed with SigV4, sent over our pooled client.

request.py builds the Converse body, response.py reads it back, stream.py decodes the binary event stream,
errors.py maps Bedrock's error types, auth.py holds credentials and signs. This module only wires them to HTTP.
"""

from __future__ import annotations

import os
from typing import Any, AsyncIterator
from urllib.parse import quote, urlsplit

import orjson

from ... import errors
from ...canonical import ChatChunk, ChatRequest, ChatResponse
from ...net import client as http
from ..base import Provider, map_transport_errors
from .auth import make_signer
from .errors import error_from_http
from .request import build_converse_body
from .response import parse_converse_response
from .stream import ConverseStreamDecoder

__all__ = ["BedrockProvider"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
_CONTENT_TYPE = [("content-type", "application/json")]


class BedrockProvider(Provider):
    kind = "bedrock"

    def __init__(self, deployment: Any):
        if not deployment.region:
            raise ValueError(f"deployment '{deployment.name}': kind bedrock needs a region (requests are signed "
                             "for one)")
        super().__init__(deployment)
        # boto3 percent-encodes the whole model id (ARNs and profile ids hold ':' and '/'); so do we.
        model_path = f"/model/{quote(deployment.model, safe='')}"
        self.converse_path = model_path + "/converse"
        self.stream_path = model_path + "/converse-stream"
        origin = urlsplit(self.endpoint())
        self.signer = make_signer(deployment, self.http.host_header, f"{origin.scheme}://{self.http.host_header}")
        self.extra_headers = list(deployment.headers.items())

    def endpoint(self) -> str:
        return self.deployment.base_url or f"https://bedrock-runtime.{self.deployment.region}.amazonaws.com"

    async def chat(self, req: ChatRequest) -> ChatResponse:
        resp = await self._post(self.converse_path, build_converse_body(req, self.name))
        try:
            with map_transport_errors(self.name):
                raw = await resp.read()
        finally:
            await resp.aclose()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.UpstreamProtocolError(
                f"deployment '{self.name}' answered a body that is not JSON", deployment=self.name) from None
        return parse_converse_response(data, self.deployment.model, _response_id(resp.headers), self.name)

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        resp = await self._post(self.stream_path, build_converse_body(req, self.name))
        try:
            content_type = resp.headers.get("content-type", EVENT_STREAM)
            if not content_type.startswith(EVENT_STREAM):
                raise errors.UpstreamProtocolError(
                    f"deployment '{self.name}' answered {content_type!r} instead of an event stream",
                    deployment=self.name)
            decoder = ConverseStreamDecoder(_response_id(resp.headers), self.deployment.model, self.name)
            with map_transport_errors(self.name):
                async for data in resp.iter_chunks():
                    for chunk in decoder.feed(data):
                        yield chunk
            for chunk in decoder.finish():
                yield chunk
        finally:
            await resp.aclose()

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        return error_from_http(status, headers, body, self.name)

    async def _post(self, path: str, payload: dict[str, Any]) -> http.Response:
        """Sign and POST this body; return the response head, or raise the typed error an error answer means."""
        body = orjson.dumps(payload)
        # Signed like boto3 signs: content-type, host, x-amz-date (+ the session token when there is one).
        headers = self.signer.sign(self.http.base_path + path, body, _CONTENT_TYPE) + self.extra_headers
        with map_transport_errors(self.name):
            resp = await self.http.send("POST", path, headers, body)
        if resp.status >= 400:
            try:
                with map_transport_errors(self.name):
                    raw = await resp.read()
            finally:
                await resp.aclose()
            raise self.error_from_response(resp.status, resp.headers, raw)
        return resp


def _response_id(headers: dict[str, str]) -> str:
    """Bedrock's request id names the completion, so the client's id can be traced in AWS logs."""
    request_id = headers.get("x-amzn-requestid")
    return f"chatcmpl-{request_id}" if request_id else f"chatcmpl-{os.urandom(12).hex()}"
