"""What the gateway tells its operators: Prometheus metrics, the dashboard's figures, access logs, event logs and
traces.

One hook, hung on every request context's close (exactly once per request, however it ended), feeds them all;
the HTTP layer reports the requests that never reached a model group. Metrics and the access log each cost
nothing when off; event lines cost one check per request that went well; traces (tracing.py) are imported only
when `telemetry.otlp` is configured. A one-second ticker, off the request path, samples the counters into the
dashboard's hour (activity.py) and looks for the events no single request tells (events.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from .. import errors
from . import stats, stats_merge, stats_part
from .access_log import AccessLog
from .activity import Activity
from .events import EventLog
from .exposition import CONTENT_TYPE, render
from .metrics import CLIENT_CLOSED, Metrics, Pricing

log = logging.getLogger("skyrelay.telemetry")
WATCH_INTERVAL = 1.0  # seconds between looks for the events no single request tells

__all__ = ["Telemetry", "CONTENT_TYPE"]


class Telemetry:
    def __init__(self, config: Any, dispatcher: Any, state: Any = None):
        self.config = config
        self.dispatcher = dispatcher
        self.deployments = config.deployments()
        self.pricing = Pricing(self.deployments, config.commitments)  # the ledger's figures (metrics.Pricing)
        self.metrics = Metrics(self.pricing) if config.metrics.enabled else None
        self.activity = Activity(self.deployments, dispatcher.clock())
        access = config.logging
        self.access_log = AccessLog(access.file, dispatcher.clock) if access.access else None
        self.events = EventLog(dispatcher.health)
        self._clock = dispatcher.clock
        self._watcher: asyncio.TimerHandle | None = None
        # What other parts of the gateway publish through /admin/stats (name -> a function returning its JSON
        # section: the ledger's "commitments", "spend" and "ledger") and through /metrics (functions returning
        # (name, help, type, label names, {label values: value}) families, read at scrape time).
        self.stats_sources: dict[str, Callable[[], Any]] = {}
        self.gauge_sources: list[Callable[[], list]] = []
        self.state = state  # the limits' state (skyrelay.state): whether Redis is shared or fallen back to local
        self.tracer = None
        if config.otlp is not None:
            from .tracing import Tracer

            self.tracer = Tracer(config.otlp, self.deployments)
            for provider in dispatcher.providers.values():
                provider.traced = True

    def reconfigure(self, config: Any, source: str, added: list[str], removed: list[str]) -> None:
        """A reloaded configuration is in force: count and price by it from now on, and say so in the log."""
        self.config = config
        self.deployments = config.deployments()
        self.pricing = Pricing(self.deployments, config.commitments)
        if self.metrics is not None:
            self.metrics.pricing = self.pricing
        self.activity.reconfigure(self.deployments)
        self.events.config_reloaded(source, added, removed)

    def start(self) -> None:
        if self.access_log is not None:
            self.access_log.start()
        self._watcher = asyncio.get_running_loop().call_later(WATCH_INTERVAL, self._watch)

    def _watch(self) -> None:
        try:
            now = self._clock()
            self.activity.sample(self.metrics, now)
            self.events.watch(self.dispatcher, self.config.model_groups, self.activity, now)
        except Exception:  # a bug here must not stop the ticker, nor reach a request
            log.exception("telemetry: the one-second look at the counters failed")
        self._watcher = asyncio.get_running_loop().call_later(WATCH_INTERVAL, self._watch)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.access_log is not None:
            self.access_log.close()
        if self.tracer is not None:
            self.tracer.close()

    def on_close(self, ctx: Any) -> None:
        """The request context's close hook: every request that reached a model group passes here once."""
        end = self._clock()
        status = 200 if ctx.error is None else status_of(ctx.error)
        cost = self.metrics.observe(ctx, status, end) if self.metrics is not None else None
        if self.access_log is not None:
            self.access_log.request(ctx, status, end, self.pricing.request_cost(ctx) if cost is None else cost)
        attempts = ctx.attempts
        if status != 200 or len(attempts) != 1 or attempts[0].status != "ok" or self.events.ejected:
            # something went wrong on the way (the common case, answered at once, pays this test alone)
            if status != 200 or len(attempts) != 1:  # the recent errors
                self.activity.note_errors(ctx, status)
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
        return render(self.metrics, self.dispatcher, self.deployments, self)

    def stats_part(self, worker: int = 0) -> dict:
        """This process's raw figures for /admin/stats (stats_part.py): what another worker asks for."""
        self.events.sweep()
        self.activity.sample(self.metrics, self._clock())
        return stats_part.collect(self.activity, self.metrics, self.dispatcher, self.config, self.events.ejections,
                                  self.state.status() if self.state is not None else None, worker)

    def stats(self, own: dict | None = None, others: list[dict] = (), workers: int = 1) -> dict:
        """The /admin/stats document (stats.py): this process's figures, merged with the other workers' that
        answered (`workers`: how many the gateway runs)."""
        part = stats_merge.merge(self.stats_part() if own is None else own, list(others))
        return stats.build(part, self.config, self.stats_sources, (workers, 1 + len(others)))


def status_of(error: BaseException | None) -> int:
    """The HTTP status the client got (or would have): 200 for an answer, even a stream broken after it began."""
    if error is None:
        return 200
    if isinstance(error, errors.GatewayError):
        return error.status
    if isinstance(error, asyncio.CancelledError):
        return CLIENT_CLOSED
    return 500
