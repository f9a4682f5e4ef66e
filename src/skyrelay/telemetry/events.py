"""Log lines for what an operator wants to hear about: failovers, throttling, breakers opening and closing.

Read off each closed request context against the health book, so routing stays free of logging: the hot path
pays one check of the attempt count and of a small set, and only a request that failed somewhere does more.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("skyrelay.events")


class EventLog:
    def __init__(self, health: Any):
        self.health = health
        self.ejected: set[str] = set()  # deployments whose breaker this log has seen open

    def observe(self, ctx: Any) -> None:
        attempts = ctx.attempts
        if len(attempts) == 1 and attempts[0].status == "ok" and not self.ejected:
            return  # the common case: nothing happened worth a line
        failed = []
        for attempt in attempts:
            name = attempt.deployment
            if attempt.status == "failed":
                failed.append(name)
                if attempt.error_kind == "UpstreamRateLimited":
                    log.info("throttled: deployment %s answered 429 (request %s)", name, ctx.request_id,
                             extra={"event": "throttled", "deployment": name, "request_id": ctx.request_id})
                if name not in self.ejected and self.health.is_ejected(name):
                    self.ejected.add(name)
                    log.warning("breaker opened: deployment %s leaves rotation after %s", name, attempt.error_kind,
                                extra={"event": "breaker_opened", "deployment": name, "error": attempt.error_kind})
            elif attempt.status == "ok":
                if failed:
                    log.info("failover: model group %s served by %s after %s failed (request %s)", ctx.group,
                             name, ", ".join(failed), ctx.request_id,
                             extra={"event": "failover", "model_group": ctx.group, "deployment": name,
                                    "failed": failed, "request_id": ctx.request_id})
        self.sweep()

    def sweep(self) -> None:
        """Breakers seen open that have closed since (a probe answered, or an active health check did)."""
        for name in [n for n in self.ejected if not self.health.is_ejected(n)]:
            self.ejected.discard(name)
            log.info("breaker closed: deployment %s is back in rotation", name,
                     extra={"event": "breaker_closed", "deployment": name})
