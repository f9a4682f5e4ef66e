"""GET /metrics: Prometheus text, for the master key or an admin key unless `metrics.public: true`; under
`serve --workers N`, every worker's counters merged (telemetry/peers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ..net.server import Request, Response
from ..protocols import openai as protocol
from ..telemetry import CONTENT_TYPE
from ..telemetry.peers import METRICS, STATS
from .admin_stats_routes import require_admin
from .app import Route

if TYPE_CHECKING:
    from .app import Gateway


def own_exposition(gateway: "Gateway") -> bytes:
    """This process's families: the telemetry's, then the ledger's."""
    body = gateway.telemetry.exposition()
    if gateway.ledger is not None:
        body += gateway.ledger.exposition().encode()
    return body


def peer_answers(gateway: "Gateway") -> dict:
    """What the other workers of `serve --workers N` may ask this one for (telemetry/peers.py)."""
    index = gateway.metrics_peers.index
    answers = {STATS: lambda: orjson.dumps(gateway.telemetry.stats_part(index))}
    if gateway.config.metrics.enabled:
        answers[METRICS] = lambda: own_exposition(gateway)
    return answers


def register(gateway: "Gateway") -> None:
    settings = gateway.config.metrics
    if not settings.enabled:
        return

    async def metrics(request: Request) -> Response:
        if not settings.public:
            require_admin(request)
        body = own_exposition(gateway)
        if gateway.metrics_peers is not None:  # one of several workers: the whole gateway's counters
            body = await gateway.metrics_peers.gather(body)
        return Response(200, body, [("content-type", CONTENT_TYPE)])

    gateway.add_route("/metrics", Route("GET", metrics, protocol.render_error, authenticated=not settings.public))
