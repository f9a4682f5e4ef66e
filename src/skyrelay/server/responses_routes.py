"""The Responses API routes: create (whole or streamed), retrieve, delete and list a stored response's input items.

A response is stored unless the client sent `store: false` (OpenAI's default is to store), in the gateway's
database, off the request path (db/responses.py). `previous_response_id` is resolved here, before routing: the
deployment that produced it receives the id as is when it speaks the Responses API itself, any other deployment
the stored conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from .. import errors
from ..canonical import ChatRequest
from ..db.responses import ResponseStore, StoredResponse
from ..net.server import Request, Response, StreamResponse
from ..protocols import responses as protocol
from .app import JSON, SSE_HEADERS, Route, context_for, outcome_headers

if TYPE_CHECKING:
    from .app import Gateway


def register(gateway: "Gateway") -> None:
    dispatcher = gateway.dispatcher
    store: ResponseStore = gateway.responses_store

    async def create(request: Request) -> Response | StreamResponse:
        if request.method != "POST":  # GET: a WebSocket handshake (Codex's first try)
            raise errors.WebSocketUnsupported("WebSocket connections are not served by this gateway; "
                                              "send POST /v1/responses")
        req = protocol.read_responses(request.body)
        native = req.responses
        previous = native.body.get("previous_response_id")
        if previous is not None:
            stored = await store.get(previous)
            if stored is None or not _allowed(request, stored):
                raise errors.InvalidRequest(f"Previous response with id '{previous}' not found.",
                                            param="previous_response_id", code="previous_response_not_found")
            native.history = stored.conversation
            native.previous_deployment = stored.deployment if stored.native else None
        keep = _keeper(store, dispatcher, req) if native.body.get("store") is not False else None
        if keep is not None:
            native.kept = {}
        if req.stream:
            stream, outcome = await dispatcher.chat_stream(req, context_for(request))
            on_done = (lambda body: keep(body, outcome)) if keep is not None else None
            events = protocol.render_any_stream(stream, native.body, req.model, on_done, native.kept)
            return StreamResponse(200, events,
                                  SSE_HEADERS + outcome_headers(outcome), release=stream.aclose)
        resp, outcome = await dispatcher.chat(req, context_for(request))
        if resp.responses is not None:
            body, data = resp.responses, resp.responses_data
        else:
            data = protocol.response_object(resp, native.body, native.kept)
            body = orjson.dumps(data)
        if keep is not None:
            keep(data, outcome)
        return Response(200, body, [JSON, *outcome_headers(outcome)])

    async def stored(request: Request) -> Response:
        rest = request.path[request.path.index("/responses/") + len("/responses/"):]
        response_id, _, tail = unquote(rest).partition("/")
        if tail not in ("", "input_items") or (tail and request.method != "GET"):
            raise errors.NotFound(f"Unknown request URL: {request.method} {request.path}", code="unknown_url")
        record = await store.get(response_id)
        if record is None or not _allowed(request, record):
            raise errors.ResponseNotFound(f"Response with id '{response_id}' not found.")
        if request.method == "DELETE":
            store.delete(response_id)
            return Response(200, orjson.dumps({"id": response_id, "object": "response", "deleted": True}), [JSON])
        if tail:
            return Response(200, orjson.dumps(_input_items(record)), [JSON])
        return Response(200, orjson.dumps(record.body), [JSON])

    for prefix in ("/v1", ""):
        gateway.add_route(f"{prefix}/responses", Route("POST", create, protocol.render_error, json_body=True,
                                                       recorded=True, other_methods=("GET",)))
        gateway.add_prefix_route(f"{prefix}/responses/",
                                 Route("GET", stored, protocol.render_error, other_methods=("DELETE",)))


def _keeper(store: ResponseStore, dispatcher: Any, req: ChatRequest):
    """What stores a finished response: its conversation is the stored one it continued, its input, its output."""
    native = req.responses
    inputs = native.body.get("input")
    inputs = [{"type": "message", "role": "user", "content": inputs}] if isinstance(inputs, str) else list(
        inputs or ())

    def keep(body: dict[str, Any], outcome: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return
        name = outcome.deployment.name
        output = body.get("output") or ()
        if native.kept:  # the thoughts the client was not shown, kept for the turn that continues this one
            output = [{**item, "encrypted_content": native.kept[item["id"]]} if item.get("id") in native.kept
                      else item for item in output]
        conversation = [*(native.history or ()), *inputs, *output]
        store.put(StoredResponse(body["id"], outcome.group, name, dispatcher.providers[name].speaks_responses,
                                 body, inputs, conversation))

    return keep


def _allowed(request: Request, record: StoredResponse) -> bool:
    """A declared key sees only the responses of the model groups it may use."""
    principal = request.principal
    allowed = principal.models if principal is not None else None
    return allowed is None or record.group in allowed


def _input_items(record: StoredResponse) -> dict[str, Any]:
    items = []
    for i, item in enumerate(record.input):
        listed = {"id": f"msg_{record.id[5:]}_{i}", "type": "message", "status": "completed", **item}
        if listed["type"] == "message" and isinstance(listed.get("content"), str):
            kind = "output_text" if listed.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": kind, "text": listed["content"]}]
        items.append(listed)
    items.reverse()  # newest first, as OpenAI lists them
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}
