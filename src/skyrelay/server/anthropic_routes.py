"""Anthropic Messages routes: an Anthropic SDK reaches any model group, whatever cloud serves it.

Every answer carries a `request-id` header, and error bodies carry the same id, as Anthropic's own do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

import orjson

from .. import errors
from ..canonical import ChatChunk, ChatRequest
from .. import dispatch_tokens
from ..net.server import Request, Response, StreamResponse
from ..protocols import anthropic as protocol
from .app import JSON, SSE_HEADERS, Route, context_for, error_response, outcome_headers

if TYPE_CHECKING:
    from .app import Gateway



def register(gateway: "Gateway") -> None:
    dispatcher = gateway.dispatcher

    async def messages(request: Request) -> Response | StreamResponse:
        request_id = request.id  # Anthropic's request-id is the x-request-id every answer has: one id
        try:
            headers = request.headers
            req = protocol.read_messages(request.body, headers.get("anthropic-beta"),
                                         headers.get("anthropic-version"), "beta=true" in request.query)
            if req.stream:
                stream, outcome = await dispatcher.chat_stream(req, context_for(request))
                headers = [*SSE_HEADERS, ("request-id", request_id), *outcome_headers(outcome, anthropic=True)]
                # sse_events passes a pass-through's unread events on as they are: those may be piped.
                return StreamResponse(200, sse_events(stream, req, request_id), headers, release=stream.aclose,
                                      pipe=stream.pipe)
            resp, outcome = await dispatcher.chat(req, context_for(request))
            body = resp.anthropic if resp.anthropic is not None else protocol.render_message(
                resp, req.model, req.show_thoughts)
            return Response(200, body, [JSON, ("request-id", request_id), *outcome_headers(outcome, anthropic=True)])
        except errors.GatewayError as err:
            request.error = err  # what the ledger records of a request refused before any model group
            return _error(err, request_id)

    async def count_tokens(request: Request) -> Response:
        request_id = request.id
        try:
            headers = request.headers
            req = protocol.read_count_tokens(request.body, headers.get("anthropic-beta"),
                                             headers.get("anthropic-version"), "beta=true" in request.query)
            tokens, counted_by = await dispatch_tokens.count_tokens(dispatcher, req, context_for(request), _estimate)
            served = ("x-skyrelay-deployment", counted_by) if counted_by else ("x-skyrelay-token-count", "estimate")
            return Response(200, orjson.dumps({"input_tokens": tokens}), [JSON, ("request-id", request_id), served])
        except errors.GatewayError as err:
            return _error(err, request_id)

    gateway.anthropic_error_reply = error_reply  # unknown URLs and shared routes, to an Anthropic client
    for path, handler in (("/v1/messages", messages), ("/v1/messages/count_tokens", count_tokens)):
        gateway.add_route(path, Route("POST", handler, protocol.render_error, error_reply=error_reply, json_body=True,
                                      recorded=handler is messages))  # a count is no request (dispatch_tokens.py)


def _estimate(req: ChatRequest) -> int:
    return protocol.estimate_input_tokens(req.anthropic.canonical(req))


def error_reply(err: errors.GatewayError, request_id: str | None = None) -> Response:
    """An error in Anthropic's format (one raised before a handler: bad key, wrong method, body too large) under
    the request's id (the x-request-id the gateway answers with), or a new one."""
    return _error(err, request_id or protocol.new_request_id())


def _error(err: errors.GatewayError, request_id: str) -> Response:
    resp = error_response(err, lambda e: protocol.render_error(e, request_id))
    resp.headers.append(("request-id", request_id))
    return resp


async def sse_events(stream: AsyncIterator[ChatChunk], req: ChatRequest, request_id: str) -> AsyncIterator[bytes]:
    """Anthropic events for the canonical stream (or the cloud's own, when the request passed through); a failure
    after the first byte ends it with an error event, so SDKs raise instead of returning half an answer. The
    thoughts of a translated cloud are shown when the client asked for thinking (read when the stream committed:
    the request was converted for the cloud that serves it)."""
    renderer = (protocol.ThinkingStreamRenderer if req.show_thoughts else protocol.StreamRenderer)(req.model)
    passed_through = False
    try:
        async for chunk in stream:
            native = chunk.anthropic
            if native is not None:
                passed_through = True
                if native:
                    yield native
                continue
            out = renderer.feed(chunk)
            if out:
                yield out
    except errors.GatewayError as err:
        yield protocol.render_stream_error(err, request_id)
        return
    if not passed_through:
        yield renderer.close()
