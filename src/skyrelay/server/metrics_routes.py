"""GET /metrics: Prometheus text, for the master key or an admin key unless `metrics.public: true`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..net.server import Request, Response
from ..protocols import openai as protocol
from ..telemetry import CONTENT_TYPE
from .admin_stats_routes import require_admin
from .app import Route

if TYPE_CHECKING:
    from .app import Gateway


def register(gateway: "Gateway") -> None:
    settings = gateway.config.metrics
    if not settings.enabled:
        return
    telemetry = gateway.telemetry

    async def metrics(request: Request) -> Response:
        if not settings.public:
            require_admin(request)
        body = telemetry.exposition()
        if gateway.ledger is not None:
            body += gateway.ledger.exposition().encode()
        return Response(200, body, [("content-type", CONTENT_TYPE)])

    gateway.add_route("/metrics", Route("GET", metrics, protocol.render_error, authenticated=not settings.public))
