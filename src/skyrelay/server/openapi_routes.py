"""GET /openapi.json: the gateway's own OpenAPI 3.1 document (no authentication: it describes, it holds no data).

The document is package data (openapi.yaml beside this module, so an installed gateway serves it too), read and
rendered to JSON once, when the routes are registered."""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import JSON, Route

if TYPE_CHECKING:
    from .app import Gateway

OPENAPI_PATH = "/openapi.json"


def load_document() -> dict[str, Any]:
    return yaml.safe_load(resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8"))


@functools.cache  # parsed once per process (a few hundred ms of YAML), however many gateways it starts
def document_json() -> bytes:
    return orjson.dumps(load_document())


def register(gateway: "Gateway") -> None:
    body = document_json()

    async def openapi(request: Request) -> Response:
        return Response(200, body, [JSON])

    gateway.add_route(OPENAPI_PATH, Route("GET", openapi, protocol.render_error, authenticated=False))
