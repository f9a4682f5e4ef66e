"""What the gateway tells its operators: Prometheus metrics, access logs, event logs and traces.

One hook, hung on every request context's close (exactly once per request, however it ended), feeds them all;
the HTTP layer reports the requests that never reached a model group. Metrics and the access log each cost
nothing when off; event lines cost one check per request that went well; traces (tracing.py) are imported only
when `telemetry.otlp` is configured.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import errors
from .access_log import AccessLog
from .events import EventLog
from .exposition import CONTENT_TYPE, render
from .metrics import CLIENT_CLOSED, Metrics, prices_of

__all__ = ["Telemetry", "CONTENT_TYPE"]


class Telemetry:
    def __init__(self, config: Any, dispatcher: Any):
        self.dispatcher = dispatcher
        self.deployments = config.deployments()
        self.metrics = Metrics(prices_of(self.deployments)) if config.metrics.enabled else None
        access = config.logging
        self.access_log = AccessLog(access.file) if access.access else None
        self.events = EventLog(dispatcher.health)
        self._clock = dispatcher.clock
        self.tracer = None
        if config.otlp is not None:
            from .tracing import Tracer

            self.tracer = Tracer(config.otlp, self.deployments)
            for provider in dispatcher.providers.values():
                provider.traced = True

    def start(self) -> None:
        if self.access_log is not None:
            self.access_log.start()

    def close(self) -> None:
        if self.access_log is not None:
            self.access_log.close()
        if self.tracer is not None:
            self.tracer.close()

    def on_close(self, ctx: Any) -> None:
        """The request context's close hook: every request that reached a model group passes here once."""
        end = self._clock()
        status = status_of(ctx.error)
        if self.metrics is not None:
            self.metrics.observe(ctx, status, end)
        if self.access_log is not None:
            self.access_log.request(ctx, status, end)
        self.events.observe(ctx)
        if self.tracer is not None:
            self.tracer.record(ctx, status, end)

    def on_unrouted(self, request: Any, status: int, route: str) -> None:
        """A request answered without reaching a model group (`route`: its registered path, or "other")."""
        if self.metrics is not None:
            self.metrics.observe_unrouted(route, status)
        if self.access_log is not None:
            self.access_log.unrouted(request, status)

    def exposition(self) -> bytes:
        self.events.sweep()  # a breaker an active health check closed is told at the latest here
        return render(self.metrics, self.dispatcher, self.deployments)


def status_of(error: BaseException | None) -> int:
    """The HTTP status the client got (or would have): 200 for an answer, even a stream broken after it began."""
    if error is None:
        return 200
    if isinstance(error, errors.GatewayError):
        return error.status
    if isinstance(error, asyncio.CancelledError):
        return CLIENT_CLOSED
    return 500
