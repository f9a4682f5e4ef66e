"""Liveness and readiness, for load balancers and orchestrators (no authentication: they carry no data)."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import JSON, Route, json_response

if TYPE_CHECKING:
    from .app import Gateway


def register(gateway: "Gateway") -> None:
    live_body = b'{"status":"ok"}'

    async def live(request: Request) -> Response:
        return Response(200, live_body, [JSON])

    async def ready(request: Request) -> Response:
        """Always 200 while serving (an upstream's outage must not pull every replica out of the load balancer);
        the body says whether every model group has a deployment that may take a request now."""
        dispatcher = gateway.dispatcher
        now = dispatcher.clock()
        groups = {}
        for name, group in gateway.config.model_groups.items():
            groups[name] = {d.name: dispatcher.health.state(d.name, now) for d in group.deployments}
        ready_now = all(
            any(dispatcher.health.is_available(d.name, now) for d in group.deployments)
            for group in gateway.config.model_groups.values()
        )
        # `state.shared` false: Redis is unreachable and this replica enforces its share of each limit alone.
        return json_response({"status": "ready" if ready_now else "degraded", "model_groups": groups,
                              "state": gateway.governor.state.status(), "pid": os.getpid(),
                              "tasks": len(asyncio.all_tasks())})  # a leak shows as a count that only grows

    gateway.add_route("/health/live", Route("GET", live, protocol.render_error, authenticated=False))
    gateway.add_route("/health/ready", Route("GET", ready, protocol.render_error, authenticated=False))
