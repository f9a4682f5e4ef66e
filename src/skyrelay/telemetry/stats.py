"""GET /admin/stats: what the dashboard shows, as one JSON document built when asked (never on the request path).

Traffic comes from the activity ring (activity.py) and spend from the counters (metrics.py); health, quotas,
vendor shares and in-flight counts are read from the dispatcher's routing state at that moment, as /metrics reads
them. Sections another part of the gateway
owns (the ledger's commitment burn-down and spool) come from the sources it registers with Telemetry; until then
the document says where they will come from. The shape is documented in server/openapi.yaml (AdminStats).
"""

from __future__ import annotations

import datetime
import time
from typing import Any, Callable

from ..routing.quotas import CONCURRENCY
from .activity import BUCKET_S, BUCKETS, Activity
from .metrics import Metrics, spend

RATE_WINDOW_S = 60.0  # requests/s: over the last minute
SHARE_WINDOW_S = 300.0  # traffic and tier shares: over the last five minutes
NO_TEAM = "(no team)"


def build(activity: Activity, metrics: Metrics | None, dispatcher: Any, config: Any, ejections: dict[str, int],
          state: dict | None, sources: dict[str, Callable[[], Any]]) -> dict:
    now = dispatcher.clock()
    wall = time.time()
    deployments = config.deployments()
    history, _ = activity.window(now, BUCKET_S * BUCKETS)
    recent, recent_span = activity.window(now, RATE_WINDOW_S)
    shares, _ = activity.window(now, SHARE_WINDOW_S)
    served = {d.name: activity.totals(d.name, shares)[0] for d in deployments}
    total_served = sum(served.values())
    records, windows = dispatcher.health.snapshot(), dispatcher.quotas.snapshot(now)
    rows = [_deployment(d, activity, dispatcher, now, recent, recent_span, served, total_served, ejections,
                        records.get(d.name, {}), windows.get(d.name, {})) for d in deployments]
    extra = {name: source() for name, source in sources.items()}
    return {
        "time": round(wall, 3),
        "uptime_s": round(now - activity.started, 3),
        "series": {
            "start": round(wall - (now - history.start * BUCKET_S), 3),  # wall time of the oldest bucket's start
            "step_s": BUCKET_S,
            "deployments": {d.name: activity.series(d.name, history) for d in deployments},
        },
        "deployments": rows,
        "vendors": _vendors(rows, total_served),
        "model_groups": [_group(g, dispatcher, activity, shares, now) for g in config.model_groups.values()],
        "spend": extra.pop("spend", None) or _spend(metrics, activity.started_wall),
        "commitments": extra.pop("commitments", None) or _commitments(config.commitments, wall),
        "errors": list(reversed(activity.errors)),  # newest first
        "state": state,
        **extra,
    }


def _deployment(d: Any, activity: Activity, dispatcher: Any, now: float, recent: range, span: float,
                served: dict[str, int], total_served: int, ejections: dict[str, int], record: dict,
                window: dict) -> dict:
    health = dispatcher.health
    ok, failed, latency = activity.totals(d.name, recent)
    reason = health.unavailable_reason(d.name, now)
    return {
        "name": d.name, "model_group": d.group, "kind": d.kind, "vendor": d.vendor, "region": d.region,
        "tier": d.tier,
        "requests_per_s": round((ok + failed) / span, 3),
        "errors_per_s": round(failed / span, 3),
        "latency_ms": round(latency * 1000 / ok, 2) if ok else None,
        "share": round(served[d.name] / total_served, 4) if total_served else 0.0,
        "health": {
            "breaker": health.state(d.name, now),
            "available": reason is None,
            "reason": reason,
            "unavailable_s": round(health.seconds_until_available(d.name, now), 3) if reason else 0.0,
            "consecutive_failures": record.get("failures", 0),
            "ejections": ejections.get(d.name, 0),
        },
        "in_flight": dispatcher.outstanding.get(d.name, 0),
        "quota": _quota(d, window, dispatcher.outstanding.get(d.name, 0)),
    }


def _quota(d: Any, window: dict, in_flight: int) -> dict:
    """Each configured limit with what it counts now, and the headroom left under the tightest (1: all free)."""
    limits = {}
    for kind, limit, used in (("requests", d.rpm, window.get("requests", 0)),
                              ("tokens", d.tpm, window.get("tokens", 0)),
                              (CONCURRENCY, d.max_concurrency, in_flight)):
        if limit is not None:
            limits[kind] = {"limit": limit, "used": used}
    headroom = min((max(0.0, 1 - v["used"] / v["limit"]) for v in limits.values()), default=None)
    return {"limits": limits, "headroom": None if headroom is None else round(headroom, 4)}


def _vendors(rows: list[dict], total_served: int) -> list[dict]:
    vendors: dict[str, dict] = {}
    for row in rows:
        entry = vendors.setdefault(row["vendor"], {"vendor": row["vendor"], "requests_per_s": 0.0, "share": 0.0})
        entry["requests_per_s"] = round(entry["requests_per_s"] + row["requests_per_s"], 3)
        entry["share"] = round(entry["share"] + row["share"], 4)
    return sorted(vendors.values(), key=lambda v: -v["share"])


def _group(group: Any, dispatcher: Any, activity: Activity, shares: range, now: float) -> dict:
    served = {d.name: activity.totals(d.name, shares)[0] for d in group.deployments}
    total = sum(served.values())
    by_tier: dict[int, int] = {}
    for d in group.deployments:
        by_tier[d.tier] = by_tier.get(d.tier, 0) + served[d.name]
    lowest = min(by_tier, default=0)
    spilled = total - by_tier.get(lowest, 0)
    out = {
        "name": group.name, "strategy": group.strategy,
        "tiers": [{"tier": tier, "served": count, "share": round(count / total, 4) if total else 0.0}
                  for tier, count in sorted(by_tier.items())],
        "spillover_share": round(spilled / total, 4) if total else 0.0,
        "concentration": None,
    }
    policy = group.concentration
    if policy is not None:
        book = dispatcher.shares
        amounts = book.amounts(group.name, policy, now)
        carried = sum(amounts.values())
        out["concentration"] = {
            "max_share": policy.max_share, "window_s": policy.window_s, "measure": policy.measure,
            "on_breach": policy.on_breach,
            "vendors": {v: round(a / carried, 4) if carried else 0.0 for v, a in sorted(amounts.items())},
            "over_cap": sorted(book.over_cap(group.name, policy, now)),
            "breaches": book.breaches.get(group.name, 0),
            "refusals": book.refusals.get(group.name, 0),
        }
    return out


def _spend(metrics: Metrics | None, since: float) -> dict:
    """team -> model group -> vendor, billed US dollars (the ledger's figures), since this process started."""
    teams: dict[str, dict] = {}
    for (team, group, vendor), usd in (spend(metrics) if metrics is not None else {}).items():
        t = teams.setdefault(team or NO_TEAM, {"team": team or NO_TEAM, "usd": 0.0, "model_groups": {}})
        g = t["model_groups"].setdefault(group, {"model_group": group, "usd": 0.0, "vendors": {}})
        g["vendors"][vendor] = g["vendors"].get(vendor, 0.0) + usd
        g["usd"] += usd
        t["usd"] += usd
    out = []
    for t in sorted(teams.values(), key=lambda t: -t["usd"]):
        groups = sorted(t["model_groups"].values(), key=lambda g: -g["usd"])
        out.append({**t, "model_groups": groups})
    return {"source": "gateway", "since": since, "currency": "USD", "teams": out}


def _commitments(commitments: tuple, wall: float) -> dict:
    """The configured commitments and how much of their term has passed; consumption needs the ledger."""
    today = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    items = []
    for c in commitments:
        start = datetime.datetime.combine(c.start, datetime.time(), datetime.timezone.utc)
        end = datetime.datetime.combine(c.end, datetime.time(), datetime.timezone.utc)
        term = (end - start).total_seconds()
        elapsed = min(max((today - start).total_seconds() / term, 0.0), 1.0) if term > 0 else 1.0
        items.append({"name": c.name, "kind": c.kind, "vendor": c.vendor, "start": c.start.isoformat(),
                      "end": c.end.isoformat(), "amount_usd": c.amount_usd or None,
                      "cost_per_hour": c.cost_per_hour or None, "elapsed": round(elapsed, 4),
                      "consumed_usd": None})
    return {"source": "config", "commitments": items}
