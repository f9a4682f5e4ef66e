"""GET /ui: the dashboard, static files shipped in the package (server/ui/), read once at start.

The page holds no data: it asks for a key and reads /admin/stats with it, so these routes need none. Their
Content-Security-Policy lets the page load only its own scripts and talk only to this gateway.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import NotFound
from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import Route

if TYPE_CHECKING:
    from .app import Gateway

PREFIX = "/ui/"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
ASSETS = ("dashboard.js", "dashboard.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css")
# uPlot sizes its elements through their style attribute: inline styles are allowed, inline scripts are not.
SECURITY = [("content-security-policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
            ("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"),
            ("cache-control", "no-cache")]


@functools.cache  # once per process, however many gateways it starts
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("ui", name).read_bytes()


def _file(name: str) -> tuple[bytes, list[tuple[str, str]]]:
    return _read(name), [("content-type", TYPES[name[name.rindex("."):]]), *SECURITY]


def register(gateway: "Gateway") -> None:
    page = _file("index.html")
    assets = {PREFIX + name: _file(name) for name in ASSETS}

    async def index(request: Request) -> Response:
        return Response(200, page[0], list(page[1]))  # a new header list: the gateway appends x-request-id

    async def asset(request: Request) -> Response:
        found = assets.get(request.path)
        if found is None:
            raise NotFound(f"no dashboard file {request.path[:200]}", code="unknown_url")
        return Response(200, found[0], list(found[1]))

    gateway.add_route("/ui", Route("GET", index, protocol.render_error, authenticated=False))
    gateway.add_prefix_route(PREFIX, Route("GET", asset, protocol.render_error, authenticated=False))
