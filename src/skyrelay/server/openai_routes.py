"""OpenAI-compatible routes: chat completions (whole and streamed), embeddings, models (the list and each one)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, AsyncIterator
from urllib.parse import unquote

from .. import errors
from ..canonical import ChatChunk, ChatRequest
from ..net.server import Request, Response, StreamResponse
from ..protocols import openai as protocol
from . import anthropic_models
from ..context import RequestContext
from .app import JSON, SSE_HEADERS, Route, context_for, outcome_headers, usd

if TYPE_CHECKING:
    from .app import Gateway



def register(gateway: "Gateway") -> None:
    dispatcher = gateway.dispatcher

    async def chat_completions(request: Request) -> Response | StreamResponse:
        req = protocol.parse_chat(request.body)
        if req.stream:
            stream, outcome = await dispatcher.chat_stream(req, context_for(request))
            # sse_stream passes the pass-through's unread events on as they are, and renders a translated stream's
            # text chunks as render_chunk does: those may be piped.
            return StreamResponse(200, sse_stream(stream, req, outcome.context),
                                  SSE_HEADERS + outcome_headers(outcome), release=stream.aclose,
                                  pipe=partial(stream.pipe, render=protocol.render_chunk))
        resp, outcome = await dispatcher.chat(req, context_for(request))
        return Response(200, protocol.render_chat(resp), [JSON, *outcome_headers(outcome)])

    async def embeddings(request: Request) -> Response:
        req = protocol.parse_embeddings(request.body)
        resp, outcome = await dispatcher.embed(req, context_for(request))
        return Response(200, protocol.render_embeddings(resp), [JSON, *outcome_headers(outcome)])

    catalog = _Catalog(gateway)

    async def models(request: Request) -> Response:
        allowed = request.principal.models if request.principal is not None else None
        if "anthropic-version" in request.headers:  # an anthropic SDK: its own page shape
            return anthropic_models.listing(request, gateway, allowed)
        return Response(200, catalog.listing(allowed), [JSON])

    def model(prefix: str):
        async def retrieve(request: Request) -> Response:
            # Decoded once: ids may hold `/` or `:` and clients may percent-encode them.
            name = unquote(request.path[len(prefix):])
            if "anthropic-version" in request.headers:
                return anthropic_models.retrieve(name, gateway, request.id)
            body = catalog.entry(name)
            if body is None:
                raise errors.NotFound(f"The model '{name}' does not exist", param="model")
            return Response(200, body, [JSON])
        return retrieve

    for prefix in ("/v1", ""):  # some clients are configured with the host only, without /v1
        gateway.add_route(f"{prefix}/chat/completions",
                          Route("POST", chat_completions, protocol.render_error, json_body=True, recorded=True))
        gateway.add_route(f"{prefix}/embeddings",
                          Route("POST", embeddings, protocol.render_error, json_body=True, recorded=True))
        gateway.add_route(f"{prefix}/models", Route("GET", models, protocol.render_error, anthropic_clients=True))
        gateway.add_prefix_route(f"{prefix}/models/", Route("GET", model(f"{prefix}/models/"), protocol.render_error,
                                                            anthropic_clients=True))


class _Catalog:
    """The model list and entries, rendered once per configuration (again after a reload); a key sees only the
    model groups it may use."""

    __slots__ = ("_gateway", "_groups", "_all", "_by_allowed", "_entries")

    def __init__(self, gateway: "Gateway"):
        self._gateway = gateway
        self._groups = None

    def _current(self) -> None:
        groups = self._gateway.config.model_groups
        if groups is not self._groups:
            started = self._gateway.started_at
            self._all = protocol.render_models(list(groups), started)
            self._by_allowed: dict[frozenset, bytes] = {}
            self._entries = {name: protocol.render_model(name, started) for name in groups}
            self._groups = groups

    def listing(self, allowed: frozenset | None) -> bytes:
        self._current()
        if allowed is None:
            return self._all
        body = self._by_allowed.get(allowed)
        if body is None:
            names = [name for name in self._groups if name in allowed]
            body = self._by_allowed[allowed] = protocol.render_models(names, self._gateway.started_at)
        return body

    def entry(self, name: str) -> bytes | None:
        self._current()
        return self._entries.get(name)


async def sse_stream(stream: AsyncIterator[ChatChunk], req: ChatRequest,
                     ctx: RequestContext | None = None) -> AsyncIterator[bytes]:
    """Render chunks as SSE; drop the usage chunk the gateway asked for on its own account; end broken streams
    with an error event rather than a silent cut, so SDKs raise instead of returning half an answer. A finished
    stream's billed cost (known once its context closed, at its end) goes in an SSE comment before `[DONE]`:
    SDKs skip comments, a client that wants it reads it."""
    render = protocol.render_chunk
    want_usage = req.include_usage
    try:
        async for chunk in stream:
            if chunk.usage is not None and not want_usage and _is_usage_only(chunk):
                continue
            yield render(chunk)
    except errors.GatewayError as err:
        yield protocol.render_stream_error(err)
        return
    cost = ctx.cost_usd if ctx is not None else None
    yield protocol.STREAM_DONE if cost is None else b": x-skyrelay-cost-usd " + usd(cost).encode() + b"\n\n" + \
        protocol.STREAM_DONE


def _is_usage_only(chunk: ChatChunk) -> bool:
    return chunk.role is None and chunk.content is None and not chunk.tool_calls and chunk.finish_reason is None
