"""The Responses API of the `openai` and `azure` emulated clouds: create (whole or streamed), retrieve, delete and
list input items, with the stored conversations `previous_response_id` continues.

Stored responses live in memory, per cloud, the newest few thousand (OpenAI keeps them 30 days). Reasoning items
carry an `encrypted_content` only this cloud can open: a keyed MAC over the item, checked when a client sends the
item back, so a gateway that hands one cloud's reasoning to another (or alters it) is caught.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections import OrderedDict
from typing import Any

import orjson

from skyrelay.net.server import Response, StreamResponse

from ..generate import conversation_seed
from . import openai_wire as wire
from . import responses_wire as rw
from .base import CallContext
from .json_output import as_json_choice, sample_json
from .responses_request import ResponsesCall, responses_request

_KEPT = 4096  # stored responses per cloud; the oldest are forgotten first


class _Stored:
    __slots__ = ("body", "inputs", "conversation")

    def __init__(self, body: dict[str, Any], inputs: list[dict[str, Any]], conversation: list[dict[str, Any]]):
        self.body = body  # the Response as returned
        self.inputs = inputs  # the input items of that request (previous responses' items excluded)
        self.conversation = conversation  # everything a follow-up continues: earlier items, input, output


class ResponsesApi:
    def __init__(self, secret: str):
        self._key = hashlib.sha256(b"responses\x00" + secret.encode()).digest()
        self._stored: OrderedDict[str, _Stored] = OrderedDict()

    # --- create ---------------------------------------------------------------------------------------------------

    async def create(self, payload: Any, ctx: CallContext, headers: list[tuple[str, str]],
                     model_name: str | None = None) -> Response | StreamResponse:
        """`model_name`: the model behind an Azure deployment (the body's `model` names the deployment)."""
        if isinstance(payload, wire.ApiError):
            raise payload
        previous = payload.get("previous_response_id")
        history = self._history(previous) if isinstance(previous, str) else []
        call = responses_request(payload, history, self._check_reasoning)
        model = model_name or call.inp.model
        call.inp.model = model
        gen = await ctx.generate(call.inp)
        seed = conversation_seed(ctx.spec.seed, call.inp)
        if call.schema is not None or call.json_mode:
            value = sample_json(call.schema, random.Random(seed))
            gen.choices = [as_json_choice(c, value, call.inp.max_tokens) for c in gen.choices]
        meta = rw.ReplyMeta(ctx.request_key, model, call, seed, self._seal)
        if call.stream:
            chunks = rw.stream(gen, meta, call, ctx.pacer, lambda body: self._keep(call, body, len(history)))
            return StreamResponse(200, chunks, wire.SSE_HEADERS + headers)
        await ctx.pacer.whole(gen.longest_choice_tokens + (rw.REASONING_TOKENS if call.reasoning else 0))
        body = rw.whole(gen, meta, call)
        self._keep(call, body, len(history))
        return Response(200, orjson.dumps(body), wire.JSON_HEADERS + headers)

    def _history(self, response_id: str) -> list[dict[str, Any]]:
        stored = self._stored.get(response_id)
        if stored is None:
            raise wire.ApiError(400, f"Previous response with id '{response_id}' not found.",
                                param="previous_response_id", code="previous_response_not_found")
        return stored.conversation

    def _keep(self, call: ResponsesCall, body: dict[str, Any], earlier: int) -> None:
        if not call.store:
            return
        self._stored[body["id"]] = _Stored(body, call.items[earlier:], call.items + body["output"])
        while len(self._stored) > _KEPT:
            self._stored.popitem(last=False)

    # --- reasoning items ------------------------------------------------------------------------------------------

    def _seal(self, item_id: str, text: str) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps({"id": item_id, "text": text})).decode()
        return payload + "." + self._mac(payload)

    def _mac(self, payload: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()).decode()

    def _check_reasoning(self, item: dict[str, Any], where: str) -> None:
        sealed = item.get("encrypted_content")
        if sealed is None:
            if not any(item.get("id") == o.get("id") for s in self._stored.values() for o in s.body["output"]):
                raise wire.ApiError(404, f"Item with id '{item.get('id')}' not found. Items are not persisted when "
                                         "`store` is set to false. Try again with `store` set to true, or remove "
                                         "this item from your input.", param="input")
            return
        payload, _, mac = str(sealed).partition(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise wire.ApiError(400, f"The encrypted content for item {item.get('id')} could not be verified.",
                                param=f"{where}.encrypted_content", code="invalid_encrypted_content")

    # --- retrieve, delete, input items ----------------------------------------------------------------------------

    def retrieve(self, response_id: str, headers: list[tuple[str, str]]) -> Response:
        return wire.json_response(200, self._get(response_id).body, headers)

    def delete(self, response_id: str, headers: list[tuple[str, str]]) -> Response:
        self._get(response_id)
        del self._stored[response_id]
        return wire.json_response(200, {"id": response_id, "object": "response", "deleted": True}, headers)

    def input_items(self, response_id: str, headers: list[tuple[str, str]]) -> Response:
        items = [_as_listed(item, f"msg_{response_id[5:]}_{i}") for i, item in enumerate(self._get(response_id).inputs)]
        items.reverse()  # newest first, OpenAI's default order
        listing = {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
                   "last_id": items[-1]["id"] if items else None, "has_more": False}
        return wire.json_response(200, listing, headers)

    def _get(self, response_id: str) -> _Stored:
        stored = self._stored.get(response_id)
        if stored is None:
            raise wire.ApiError(404, f"Response with id '{response_id}' not found.")
        return stored


def _as_listed(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    """An input item as OpenAI lists it: with an id and a status, a message's text as an input_text part."""
    listed = {"id": item_id, "type": "message", "status": "completed", **item}
    if listed["type"] == "message" and isinstance(listed.get("content"), str):
        kind = "output_text" if listed.get("role") == "assistant" else "input_text"
        listed["content"] = [{"type": kind, "text": listed["content"]}]
    return listed


def route(path: str, prefix: str) -> tuple[str, str | None] | None:
    """(operation, response id) of a Responses API path under `prefix` ("/v1", "/openai/v1", "/openai"), else None."""
    if not path.startswith(prefix + "/responses"):
        return None
    rest = path[len(prefix) + len("/responses"):].strip("/")
    if not rest:
        return "responses", None
    response_id, _, tail = rest.partition("/")
    if tail == "input_items":
        return "responses.input_items", response_id
    return ("responses.get", response_id) if not tail else None
