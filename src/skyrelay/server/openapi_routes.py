"""GET /openapi.json: the gateway's own OpenAPI 3.1 document (no authentication: it describes, it holds no data).

The document is package data (openapi.yaml beside this module, so an installed gateway serves it too), read and
rendered to JSON once, at its first request: parsing it at start would add a tenth of a second to every start."""

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


# libyaml's loader when PyYAML was built with it (5-10x faster on this document), the same safe subset either way.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


@functools.cache  # parsed once per process, however many gateways it serves
def document_json() -> bytes:
    return orjson.dumps(load_document())


def register(gateway: "Gateway") -> None:
    async def openapi(request: Request) -> Response:
        return Response(200, document_json(), [JSON])

    gateway.add_route(OPENAPI_PATH, Route("GET", openapi, protocol.render_error, authenticated=False))
