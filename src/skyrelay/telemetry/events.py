"""Log lines for what an operator wants to hear about: failovers, throttling, breakers opening and closing, quotas
running out, tiers spilling over, the vendor cap breached, configuration reloaded.

Read off each closed request context against the health book, so routing stays free of logging: the hot path
pays one check of the attempt count and of a small set, and only a request that failed somewhere does more. What
no single request shows (a quota at its limit, a tier spilling, a cap breached, a breaker an active check closed)
is found by `watch`, which the telemetry's one-second ticker calls off the request path.
"""

from __future__ import annotations

import logging
from typing import Any

from ..routing.quotas import QUOTA
from .activity import BUCKET_S

log = logging.getLogger("skyrelay.events")
SPILL_QUIET_S = 30.0  # a spillover ends when no higher tier served for this long


class EventLog:
    def __init__(self, health: Any):
        self.health = health
        self.ejected: set[str] = set()  # deployments whose breaker this log has seen open
        self.ejections: dict[str, int] = {}  # per deployment: breaker openings seen since start
        self.exhausted: set[str] = set()  # deployments whose own rpm/tpm quota is spent
        self.spilling: dict[str, float] = {}  # model group -> when a higher tier last served it
        self.edges: dict[str, tuple[int, int]] = {}  # model group -> concentration (breaches, refusals) last told

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
                    self.ejections[name] = self.ejections.get(name, 0) + 1
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

    def watch(self, dispatcher: Any, groups: Any, activity: Any, now: float) -> None:
        """The events no single request tells: quotas at their limit, tiers spilling, the vendor cap's edge."""
        self.sweep()
        quotas = dispatcher.quotas
        for group in groups.values():
            for d in group.deployments:
                if d.rpm is None and d.tpm is None:
                    continue
                spent = quotas.refusal(d, now, 0) == QUOTA
                if spent and d.name not in self.exhausted:
                    self.exhausted.add(d.name)
                    log.warning("quota exhausted: deployment %s is at its rpm/tpm limit", d.name,
                                extra={"event": "quota_exhausted", "deployment": d.name})
                elif not spent and d.name in self.exhausted:
                    self.exhausted.discard(d.name)
            if group.tiers:
                self._spillover(group, activity, now)
            if group.concentration is not None:
                self._concentration(group.name, dispatcher.shares)

    def _spillover(self, group: Any, activity: Any, now: float) -> None:
        recent, _ = activity.window(now, 2 * BUCKET_S)
        spilled = sum(activity.totals(d.name, recent)[0] for tier in group.tiers[1:] for d in tier)
        name = group.name
        if spilled:
            if name not in self.spilling:
                log.info("spillover started: model group %s is served beyond tier %d", name, group.tiers[0][0].tier,
                         extra={"event": "spillover_started", "model_group": name})
            self.spilling[name] = now
        elif name in self.spilling and now - self.spilling[name] >= SPILL_QUIET_S:
            del self.spilling[name]
            log.info("spillover ended: model group %s is served by tier %d alone", name, group.tiers[0][0].tier,
                     extra={"event": "spillover_ended", "model_group": name})

    def _concentration(self, group: str, shares: Any) -> None:
        now = (shares.breaches.get(group, 0), shares.refusals.get(group, 0))
        before = self.edges.get(group, (0, 0))
        if now == before:
            return
        self.edges[group] = now
        served, refused = now[0] - before[0], now[1] - before[1]
        log.warning("concentration breach: model group %s served %d and refused %d requests over its vendor cap",
                    group, served, refused, extra={"event": "concentration_breach", "model_group": group,
                                                   "served": served, "refused": refused})

    def config_reloaded(self, path: str, added: list[str], removed: list[str]) -> None:
        """For the reload path to call once a new configuration is in force."""
        log.info("config reloaded from %s: %d deployments added, %d removed", path, len(added), len(removed),
                 extra={"event": "config_reloaded", "added": added, "removed": removed})
