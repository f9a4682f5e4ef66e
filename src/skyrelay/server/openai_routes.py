"""OpenAI-compatible routes: chat completions (whole and streamed), embeddings, models (the list and each one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator
from urllib.parse import unquote

from .. import errors
from ..canonical import ChatChunk, ChatRequest
from ..net.server import Request, Response, StreamResponse
from ..protocols import openai as protocol
from ..protocols import responses
from . import anthropic_models
from .app import JSON, SSE_HEADERS, Route, context_for, outcome_headers

if TYPE_CHECKING:
    from .app import Gateway



def register(gateway: "Gateway") -> None:
    dispatcher = gateway.dispatcher

    async def chat_completions(request: Request) -> Response | StreamResponse:
        req = protocol.parse_chat(request.body)
        if req.stream:
            stream, outcome = await dispatcher.chat_stream(req, context_for(request))
            return StreamResponse(200, sse_stream(stream, req), SSE_HEADERS + outcome_headers(outcome),
                                  release=stream.aclose)
        resp, outcome = await dispatcher.chat(req, context_for(request))
        return Response(200, protocol.render_chat(resp), [JSON, *outcome_headers(outcome)])

    async def create_response(request: Request) -> Response | StreamResponse:
        req, data, dropped = responses.parse_responses(request.body)
        if req.stream:
            stream, outcome = await dispatcher.chat_stream(req, context_for(request))
            if dropped:
                outcome.dropped += dropped
            return StreamResponse(200, responses.render_stream(stream, data, req.model),
                                  SSE_HEADERS + outcome_headers(outcome), release=stream.aclose)
        resp, outcome = await dispatcher.chat(req, context_for(request))
        if dropped:
            outcome.dropped += dropped
        return Response(200, responses.render_response(resp, data), [JSON, *outcome_headers(outcome)])

    async def embeddings(request: Request) -> Response:
        req = protocol.parse_embeddings(request.body)
        resp, outcome = await dispatcher.embed(req, context_for(request))
        return Response(200, protocol.render_embeddings(resp), [JSON, *outcome_headers(outcome)])

    models_body = protocol.render_models(list(gateway.config.model_groups), gateway.started_at)
    bodies_by_allowed: dict[frozenset, bytes] = {}  # a key sees only the model groups it may use

    async def models(request: Request) -> Response:
        allowed = request.principal.models if request.principal is not None else None
        if "anthropic-version" in request.headers:  # an anthropic SDK: its own page shape
            return anthropic_models.listing(request, gateway, allowed)
        if allowed is None:
            return Response(200, models_body, [JSON])
        body = bodies_by_allowed.get(allowed)
        if body is None:
            names = [name for name in gateway.config.model_groups if name in allowed]
            body = bodies_by_allowed[allowed] = protocol.render_models(names, gateway.started_at)
        return Response(200, body, [JSON])

    model_bodies = {name: protocol.render_model(name, gateway.started_at) for name in gateway.config.model_groups}

    def model(prefix: str):
        async def retrieve(request: Request) -> Response:
            # Decoded once: ids may hold `/` or `:` and clients may percent-encode them.
            name = unquote(request.path[len(prefix):])
            if "anthropic-version" in request.headers:
                return anthropic_models.retrieve(name, gateway)
            body = model_bodies.get(name)
            if body is None:
                raise errors.NotFound(f"The model '{name}' does not exist", param="model")
            return Response(200, body, [JSON])
        return retrieve

    for prefix in ("/v1", ""):  # some clients are configured with the host only, without /v1
        gateway.add_route(f"{prefix}/chat/completions",
                          Route("POST", chat_completions, protocol.render_error, json_body=True))
        gateway.add_route(f"{prefix}/responses",
                          Route("POST", create_response, responses.render_error, json_body=True))
        gateway.add_route(f"{prefix}/embeddings", Route("POST", embeddings, protocol.render_error, json_body=True))
        gateway.add_route(f"{prefix}/models", Route("GET", models, protocol.render_error))
        gateway.add_prefix_route(f"{prefix}/models/", Route("GET", model(f"{prefix}/models/"), protocol.render_error))


async def sse_stream(stream: AsyncIterator[ChatChunk], req: ChatRequest) -> AsyncIterator[bytes]:
    """Render chunks as SSE; drop the usage chunk the gateway asked for on its own account; end broken streams
    with an error event rather than a silent cut, so SDKs raise instead of returning half an answer."""
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
    yield protocol.STREAM_DONE


def _is_usage_only(chunk: ChatChunk) -> bool:
    return chunk.role is None and chunk.content is None and not chunk.tool_calls and chunk.finish_reason is None
