"""GET /admin/stats: the dashboard's data (telemetry/stats.py), for the master key or a key with `role: admin`;
under `serve --workers N`, every worker's figures merged (telemetry/peers.py, stats_merge.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from .. import errors
from ..net.server import Request, Response
from ..protocols import openai as protocol
from ..telemetry.peers import STATS
from .app import JSON, Route

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger("skyrelay.telemetry")
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
        peers = gateway.metrics_peers
        if peers is None:
            document = telemetry.stats()
        else:  # one of several workers: the whole gateway's figures
            own = telemetry.stats_part(peers.index)
            document = telemetry.stats(own, _parts(await peers.ask(STATS)), peers.count)
        return Response(200, orjson.dumps(document), [JSON, NO_STORE])

    gateway.add_route("/admin/stats", Route("GET", admin_stats, protocol.render_error))


def _parts(answers: dict[int, bytes]) -> list[dict]:
    """The other workers' parts; one cut short (its worker died while answering) is left out like a silent one."""
    parts = []
    for index, body in sorted(answers.items()):
        try:
            parts.append(orjson.loads(body))
        except orjson.JSONDecodeError:
            log.warning("telemetry: worker %d's /admin/stats figures were cut short: left out", index)
    return parts
