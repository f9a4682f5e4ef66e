"""GET /admin/stats: the dashboard's data (telemetry/stats.py), for the master key or a key with `role: admin`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from .. import errors
from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import JSON, Route

if TYPE_CHECKING:
    from .app import Gateway

NO_STORE = ("cache-control", "no-store")  # live figures, and an admin's view: never kept by a cache


def require_admin(request: Request) -> None:
    """The route authenticated the key already: the master key (no principal) passes, or a key with role admin."""
    principal = request.principal
    if principal is not None and principal.role != "admin":
        raise errors.PermissionDenied(f"key '{principal.name}' may not read the admin API: it needs role admin "
                                      "(or use the master key)")


def register(gateway: "Gateway") -> None:
    telemetry = gateway.telemetry

    async def admin_stats(request: Request) -> Response:
        require_admin(request)
        return Response(200, orjson.dumps(telemetry.stats()), [JSON, NO_STORE])

    gateway.add_route("/admin/stats", Route("GET", admin_stats, protocol.render_error))
