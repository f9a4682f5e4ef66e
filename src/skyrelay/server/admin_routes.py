"""The admin API: `/admin/keys` and `/admin/teams` (POST creates, GET lists) and `/admin/{keys,teams}/{id}`
(GET shows, PATCH changes, DELETE revokes a key or removes a team). For the master key, or a key with
`role: admin`; errors in OpenAI's JSON shape."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson

from .. import errors
from ..net.server import Request, Response
from ..protocols import openai as openai_protocol
from .app import Route, is_json, json_response, presented_key

if TYPE_CHECKING:
    from .app import Gateway


def register(gateway: "Gateway") -> None:
    registry = gateway.governor.registry
    collections = {
        "keys": (registry.create_key, registry.list_keys),
        "teams": (registry.create_team, registry.list_teams),
    }
    items = {
        "keys": (registry.get_key, registry.update_key, registry.revoke_key),
        "teams": (registry.get_team, registry.update_team, registry.delete_team),
    }

    def collection(kind: str):
        create, listing = collections[kind]

        async def handle(request: Request) -> Response:
            admit(gateway, request)
            if request.method == "POST":
                return json_response(await create(_body(request)), 201)
            if request.method == "GET":
                return json_response({"object": "list", "data": await listing()})
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use GET or POST")
        return handle

    def item(kind: str):
        show, update, delete = items[kind]
        prefix = f"/admin/{kind}/"

        async def handle(request: Request) -> Response:
            admit(gateway, request)
            wanted = unquote(request.path[len(prefix):])
            if request.method == "GET":
                return json_response(await show(wanted))
            if request.method == "PATCH":
                return json_response(await update(wanted, _body(request)))
            if request.method == "DELETE":
                return json_response(await delete(wanted))
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on {request.path}; "
                                          "use GET, PATCH or DELETE")
        return handle

    for kind in ("keys", "teams"):
        gateway.add_route(f"/admin/{kind}", Route("GET", collection(kind), openai_protocol.render_error,
                                                  authenticated=False, other_methods=("POST",)))
        gateway.add_prefix_route(f"/admin/{kind}/", Route("GET", item(kind), openai_protocol.render_error,
                                                          authenticated=False, other_methods=("PATCH", "DELETE")))


def admit(gateway: "Gateway", request: Request) -> None:
    """The master key, or a key with role admin; anything else is refused before the body is read."""
    key = presented_key(request.headers)
    master = gateway.config.server.master_key
    if master is not None and master.matches(key):
        return
    principal = gateway.governor.keys.resolve(key)  # raises 401 for an expired or revoked key
    if principal is None:
        if master is None and not gateway.governor.keys:
            raise errors.PermissionDenied("the admin API needs server.master_key (or a key with role: admin); "
                                          "none is configured", code="admin_disabled")
        raise errors.AuthenticationFailed("invalid API key")
    if principal.role != "admin":
        raise errors.PermissionDenied(f"API key '{principal.name}' may not use the admin API (its role is "
                                      f"'{principal.role}'; the master key or a key with role: admin may)",
                                      code="admin_required")
    request.principal = principal


def _body(request: Request):
    if not is_json(request.headers.get("content-type")):
        raise errors.UnsupportedMediaType("the body must be JSON, sent with 'Content-Type: application/json'")
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
