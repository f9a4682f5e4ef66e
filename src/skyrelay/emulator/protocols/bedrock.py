"""`protocol: bedrock` — Amazon Bedrock Runtime's Converse API, as bedrock-runtime.REGION.amazonaws.com serves it.

Routes: POST /model/{modelId}/converse (JSON) and POST /model/{modelId}/converse-stream (binary event stream);
POST /model/{modelId}/invoke and /invoke-with-response-stream for Claude models (Anthropic's Messages body,
bedrock_invoke.py); POST /model/{modelId}/count-tokens (CountTokens, of an InvokeModel body for Claude models);
the model id arrives percent-encoded (`%3A` for `:`, `%2F` inside ARNs). Auth, when the cloud has any configured:
SigV4 with the access key in `options` (checked by re-signing with botocore), or a Bedrock API key
(`authorization: Bearer KEY`, the cloud's `api_key`). cachePoint blocks are honoured (bedrock_cache.py); the
models that reason through Converse (DeepSeek-R1, gpt-oss, Nova 2) answer with reasoningContent
(bedrock_reasoning.py).
Errors are AWS REST-JSON errors; see bedrock_wire.py.

Options (CloudSpec.options):
    aws_access_key_id, aws_secret_access_key, aws_session_token, region   SigV4 credentials (region: us-east-1)
    max_output_tokens: N      refuse a larger inferenceConfig.maxTokens, as a model's limit does (default: the
                              published limit of Claude models, model_limits.py; none for other models)
    stream_errors: frame      status faults on converse-stream start the stream, then send an exception frame
                              (default "http": an HTTP error before the stream, Bedrock's usual answer)
    stream_padding: false     leave out the "p" padding member Bedrock adds to stream events
    retry_after_header: true  send `retry-after` with throttling faults (Bedrock itself sends none)
"""

from __future__ import annotations

import asyncio
import hmac
import random
from typing import Any
from urllib.parse import unquote

import orjson

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec, EmulatorConfigError
from ..generate import conversation_seed
from . import bedrock_eventstream as es
from . import bedrock_reasoning
from . import bedrock_wire as wire
from .base import Call, CallContext
from .bedrock_cache import cache_points
from .bedrock_invoke import OPERATIONS as INVOKE_OPERATIONS
from .bedrock_invoke import ClaudeInvoke
from .bedrock_sigv4 import AwsCredentials, verify
from .bedrock_validate import converse_input, parse_body
from .bedrock_wire import BedrockError, validation

_PREFIX = "/model/"
_COUNT = "count-tokens"
_OPERATIONS = {"converse": False, "converse-stream": True, _COUNT: False, **INVOKE_OPERATIONS}  # -> streamed
_OPTIONS = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region", "max_output_tokens",
            "stream_errors", "stream_padding", "retry_after_header"}
_API_KEY_PREFIX = "ABSK"  # what Bedrock API keys start with


class BedrockProtocol:
    name = "bedrock"

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        options = spec.options or {}
        unknown = set(options) - _OPTIONS
        if unknown:
            raise EmulatorConfigError(f"{spec.name}.options: unknown key(s) {sorted(unknown)} for protocol bedrock; "
                                      f"known: {sorted(_OPTIONS)}")
        self.models = set(spec.models)
        self.credentials = _credentials(spec.name, options)
        self.max_output_tokens = options.get("max_output_tokens")
        if self.max_output_tokens is not None and (
                not isinstance(self.max_output_tokens, int) or self.max_output_tokens < 1):
            raise EmulatorConfigError(f"{spec.name}.options.max_output_tokens: expected a whole number >= 1")
        self.stream_errors = options.get("stream_errors", "http")
        if self.stream_errors not in ("http", "frame"):
            raise EmulatorConfigError(f"{spec.name}.options.stream_errors: expected 'http' or 'frame'")
        self.padding = bool(options.get("stream_padding", True))
        self.retry_after_header = bool(options.get("retry_after_header", False))
        self.invoke = ClaudeInvoke(spec.name, spec.seed, self.padding)
        # Whether the request being inspected is a stream: the cloud calls `error_response` for a status fault
        # right after `inspect`, with no await in between, so this is that request's answer to the question.
        self._streaming = False

    def base_url(self, host: str, port: int) -> str:
        return f"http://{_client_host(host)}:{port}"  # the endpoint_url: clients add /model/{id}/converse

    # --- what a request is ----------------------------------------------------------------------------------------

    def inspect(self, request: Request) -> Call:
        route = _route(request.path)
        if route is None or request.method != "POST":
            self._streaming = False
            return Call("other")
        try:
            payload: Any = parse_body(request.body)
        except BedrockError as error:
            payload = error
        self._streaming = route[1]
        return Call("other" if request.path.endswith(_COUNT) else "chat", route[1], payload)

    # --- answers --------------------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str | None = None,
                       retry_after: float | None = None) -> Response | StreamResponse:
        error = wire.status_error(status, message)
        if self.stream_errors == "frame" and self._streaming and status != 413 and error.type in wire.STREAM_EXCEPTIONS:
            chunks = wire.failing_stream(error, random.Random(), self.padding)
            return StreamResponse(200, chunks, [("content-type", es.CONTENT_TYPE)] + wire.base_headers(
                wire.request_id()))
        extra = []
        if self.retry_after_header and retry_after is not None:
            extra.append(("retry-after", f"{retry_after:g}"))
        return wire.error_response(error, extra)

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        clock = asyncio.get_running_loop().time
        started = clock()
        try:
            route = _route(request.path)
            if route is None or request.method != "POST":
                raise BedrockError(404, "UnknownOperationException",
                                   f"No operation matches {request.method} {request.path}.", front_door=True)
            model, stream = route
            self.authenticate(request)
            if isinstance(call.payload, BedrockError):
                raise call.payload
            self.check_model(model)
            operation = request.path.rstrip("/").rpartition("/")[2]
            if operation == _COUNT:
                return self.invoke.count(call.payload, model)
            if operation in INVOKE_OPERATIONS:
                return await self.invoke.serve(call.payload, request.body, model, stream, ctx, started, clock)
            inp = converse_input(call.payload, model, self.max_output_tokens)
            if ctx.content_filter == "prompt":
                raise validation("This request has been blocked by our content filters.")
            points = cache_points(call.payload) if b'"cachePoint"' in request.body else None
            reasoning = bedrock_reasoning.for_request(call.payload, model, conversation_seed(self.spec.seed, inp))
            gen = await ctx.generate(inp)
            cache = self.invoke.cache.account(points, gen.prompt_tokens, clock()) if points else None
            headers = wire.base_headers(wire.request_id(ctx.request_key))
            if stream:
                chunks = wire.converse_stream(gen, ctx.pacer, random.Random(ctx.request_key), self.padding,
                                              started, clock, cache, reasoning)
                return StreamResponse(200, chunks, [("content-type", es.CONTENT_TYPE)] + headers)
            await ctx.pacer.whole(gen.completion_tokens + (reasoning.tokens if reasoning else 0))
            body = wire.converse_body(gen, int((clock() - started) * 1000), cache, reasoning)
            return Response(200, orjson.dumps(body), wire.JSON_HEADERS + headers)
        except BedrockError as error:
            return wire.error_response(error)

    def authenticate(self, request: Request) -> None:
        if self.credentials is None and self.spec.api_key is None:
            return  # no credentials configured: any signature (or none) passes
        header = request.headers.get("authorization")
        if not header:
            raise BedrockError(403, "AccessDeniedException", "Authorization header is missing", front_door=True)
        if header.startswith("Bearer "):
            token = header[7:].strip().encode()
            if self.spec.api_key is not None and hmac.compare_digest(token, self.spec.api_key.encode()):
                return
            message = ("Authentication failed: Please make sure your API Key is valid."
                       if token.startswith(_API_KEY_PREFIX.encode()) else
                       "Invalid API Key format: Must start with pre-defined prefix")
            raise BedrockError(403, "AccessDeniedException", message, front_door=True)
        if self.credentials is None:  # only an API key is configured: no IAM key is known to be valid
            raise BedrockError(403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.", front_door=True)
        verify(self.credentials, request.method, request.path, request.query, request.headers, request.body)

    def check_model(self, model: str) -> None:
        if self.models and model not in self.models and model.rpartition("/")[2] not in self.models:
            raise validation("The provided model identifier is invalid.")


def _route(path: str) -> tuple[str, bool] | None:
    """(model id, streamed) for a Converse URL, else None."""
    if not path.startswith(_PREFIX):
        return None
    encoded, _, operation = path[len(_PREFIX):].partition("/")
    streamed = _OPERATIONS.get(operation.rstrip("/"))
    if not encoded or streamed is None:
        return None
    return unquote(encoded), streamed


def _credentials(name: str, options: dict[str, Any]) -> AwsCredentials | None:
    key_id, secret = options.get("aws_access_key_id"), options.get("aws_secret_access_key")
    if key_id is None and secret is None:
        return None
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise EmulatorConfigError(f"{name}.options: aws_access_key_id and aws_secret_access_key go together "
                                  "(two non-empty strings)")
    token = options.get("aws_session_token")
    region = options.get("region", "us-east-1")
    if not isinstance(region, str) or (token is not None and not isinstance(token, str)):
        raise EmulatorConfigError(f"{name}.options: region and aws_session_token must be strings")
    return AwsCredentials(key_id, secret, token, region)


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
