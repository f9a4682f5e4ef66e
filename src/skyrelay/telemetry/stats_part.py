"""One process's figures for /admin/stats, kept raw (counts and sums, not means or shares) so that several workers'
add up: stats_merge.py merges the parts of `serve --workers N`, stats.py turns the merged part into the document.

A part is plain JSON (it crosses the workers' sockets, telemetry/peers.py). Built when /admin/stats is read, never
on a request's path.
"""

from __future__ import annotations

import time
from typing import Any

from ..routing.quotas import CONCURRENCY
from .activity import BUCKET_S, BUCKETS, Activity
from .metrics import Metrics, spend

RATE_WINDOW_S = 60.0  # requests/s: over the last minute
SHARE_WINDOW_S = 300.0  # traffic and tier shares: over the last five minutes


def collect(activity: Activity, metrics: Metrics | None, dispatcher: Any, config: Any, ejections: dict[str, int],
            state: dict | None, worker: int) -> dict:
    now = dispatcher.clock()
    wall = time.time()
    history, _ = activity.window(now, BUCKET_S * BUCKETS)
    recent, span = activity.window(now, RATE_WINDOW_S)
    shares, _ = activity.window(now, SHARE_WINDOW_S)
    records, windows = dispatcher.health.snapshot(), dispatcher.quotas.snapshot(now)
    shared_usage = getattr(dispatcher.quotas, "shared_usage", lambda: None)()
    deployments = {}
    for d in config.deployments():
        ok, failed, latency = activity.totals(d.name, recent)
        in_flight = dispatcher.outstanding.get(d.name, 0)
        deployments[d.name] = {
            "requests_per_s": (ok + failed) / span,
            "errors_per_s": failed / span,
            "ok": ok,  # the last minute's served attempts, and their summed seconds: a mean across workers
            "latency_s": latency,
            "served": activity.totals(d.name, shares)[0],
            "health": [_health(d.name, dispatcher.health, now, records.get(d.name, {}), worker)],
            "ejections": ejections.get(d.name, 0),
            "in_flight": in_flight,
            "quota": _quota(d, windows.get(d.name, {}), in_flight, shared_usage),
        }
    return {
        "time": wall,
        "uptime_s": now - activity.started,
        "since": activity.started_wall,
        "series": {
            "start": wall - (now - history.start * BUCKET_S),  # wall time of the oldest bucket's start
            "deployments": {d.name: activity.series(d.name, history) for d in config.deployments()},
        },
        "deployments": deployments,
        "concentration": {g.name: _concentration(g, dispatcher.shares, now)
                          for g in config.model_groups.values() if g.concentration is not None},
        "spend": [[team, group, vendor, usd] for (team, group, vendor), usd in
                  (spend(metrics) if metrics is not None else {}).items()],
        "errors": list(activity.errors),  # oldest first
        "state": state,
    }


def _health(name: str, health: Any, now: float, record: dict, worker: int) -> dict:
    reason = health.unavailable_reason(name, now)
    return {"worker": worker, "breaker": health.state(name, now), "available": reason is None, "reason": reason,
            "unavailable_s": round(health.seconds_until_available(name, now), 3) if reason else 0.0,
            "consecutive_failures": record.get("failures", 0)}


def _quota(d: Any, window: dict, in_flight: int, shared_usage: dict | None) -> dict:
    """Each configured limit and what it counts now. `shared`: the count is every replica's (the Redis snapshot),
    so workers must not add it up; otherwise it is this worker's count against this worker's share of the limit."""
    requests, tokens = window.get("requests", 0), window.get("tokens", 0)
    if shared_usage is not None:
        requests, tokens = shared_usage.get(d.name, (0, 0))
    limits = {}
    for kind, limit, used, shared in (("requests", d.rpm, requests, shared_usage is not None),
                                      ("tokens", d.tpm, tokens, shared_usage is not None),
                                      (CONCURRENCY, d.max_concurrency, in_flight, False)):
        if limit is not None:
            limits[kind] = {"limit": limit, "used": used, "shared": shared}
    return limits


def _concentration(group: Any, book: Any, now: float) -> dict:
    return {"amounts": book.amounts(group.name, group.concentration, now),
            "shared": getattr(book, "shared", False),  # the Redis snapshot: every replica's window already
            "breaches": book.breaches.get(group.name, 0), "refusals": book.refusals.get(group.name, 0)}
