"""`GET /v1/models` and `GET /v1/models/{id}` for anthropic SDKs (told apart by their anthropic-version header):
the model groups in Anthropic's shape, errors in Anthropic's format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from ..net.server import Request, Response
from ..protocols.anthropic import models
from .anthropic_routes import error_reply
from .app import JSON

if TYPE_CHECKING:
    from .app import Gateway


def listing(request: Request, gateway: "Gateway", allowed: frozenset | None) -> Response:
    names = [name for name in gateway.config.model_groups if allowed is None or name in allowed]
    try:
        return _answer(models.render_models(names, gateway.started_at, request.query), request.id)
    except errors.GatewayError as err:
        return error_reply(err, request.id)


def retrieve(name: str, gateway: "Gateway", request_id: str) -> Response:
    if name not in gateway.config.model_groups:
        return error_reply(errors.NotFound(f"model: {name}", param="model"), request_id)
    return _answer(models.render_model(name, gateway.started_at), request_id)


def _answer(body: bytes, request_id: str) -> Response:
    """A page under the request's own id: the same in `request-id` as in `x-request-id`."""
    return Response(200, body, [JSON, ("request-id", request_id)])
