"""GET /admin/stats: what the dashboard shows, as one JSON document built when asked (never on the request path).

Each worker's figures are collected raw (stats_part.py: traffic from the activity ring, spend from the counters,
health, quotas, vendor shares and in-flight counts from the dispatcher's routing state at that moment, as /metrics
reads them), merged across the workers of `serve --workers N` (stats_merge.py), and turned here into rates, means
and shares. Sections another part of the gateway owns (the ledger's commitment burn-down) come from the sources it
registers with Telemetry, read from the answering worker (they come from the shared database); until
then the document says where they will come from. The shape is documented in server/openapi.yaml (AdminStats).
"""

from __future__ import annotations

import datetime
from typing import Any, Callable

from .activity import BUCKET_S

NO_TEAM = "(no team)"
BREAKER_RANK = {"closed": 0, "half_open": 1, "open": 2}  # the worst of the workers' breakers is the one shown


def build(part: dict, config: Any, sources: dict[str, Callable[[], Any]], workers: tuple[int, int]) -> dict:
    """The document from a (merged) part; `workers`: (how many the gateway runs, how many this answer counts)."""
    figures = part["deployments"]
    deployments = [d for d in config.deployments() if d.name in figures]
    total_served = sum(figures[d.name]["served"] for d in deployments)
    rows = [_deployment(d, figures[d.name], total_served) for d in deployments]
    extra = {name: source() for name, source in sources.items()}
    wall = part["time"]
    return {
        "time": round(wall, 3),
        "uptime_s": round(part["uptime_s"], 3),
        "workers": {"count": workers[0], "reporting": workers[1]},
        "series": {
            "start": round(part["series"]["start"], 3),
            "step_s": BUCKET_S,
            "deployments": {d.name: _series(part["series"]["deployments"][d.name]) for d in deployments},
        },
        "deployments": rows,
        "vendors": _vendors(rows, total_served),
        "model_groups": [_group(g, figures, part["concentration"].get(g.name))
                         for g in config.model_groups.values()],
        "spend": extra.pop("spend", None) or _spend(part["spend"], part["since"]),
        "commitments": extra.pop("commitments", None) or _commitments(config.commitments, wall),
        "errors": list(reversed(part["errors"])),  # newest first
        "state": part["state"],
        **extra,
    }


def _series(series: dict) -> dict:
    return {"ok": series["ok"], "failed": series["failed"],
            "latency_ms": [round(seconds * 1000 / ok, 2) if ok else None
                           for ok, seconds in zip(series["ok"], series["latency_s"])]}


def _deployment(d: Any, figures: dict, total_served: int) -> dict:
    ok = figures["ok"]
    return {
        "name": d.name, "model_group": d.group, "kind": d.kind, "vendor": d.vendor, "region": d.region,
        "tier": d.tier,
        "requests_per_s": round(figures["requests_per_s"], 3),
        "errors_per_s": round(figures["errors_per_s"], 3),
        "latency_ms": round(figures["latency_s"] * 1000 / ok, 2) if ok else None,
        "share": round(figures["served"] / total_served, 4) if total_served else 0.0,
        "health": _health(figures["health"], figures["ejections"]),
        "in_flight": figures["in_flight"],
        "quota": _quota(figures["quota"]),
    }


def _health(workers: list[dict], ejections: int) -> dict:
    """The worst worker's breaker (open anywhere shows open); available only where every worker would route to it;
    each worker's own view under `workers`."""
    worst = max(workers, key=lambda h: (BREAKER_RANK.get(h["breaker"], 0), not h["available"],
                                        h["unavailable_s"]))
    return {
        "breaker": worst["breaker"],
        "available": all(h["available"] for h in workers),
        "reason": worst["reason"],
        "unavailable_s": max(h["unavailable_s"] for h in workers),
        "consecutive_failures": max(h["consecutive_failures"] for h in workers),
        "ejections": ejections,
        "workers": workers,
    }


def _quota(limits: dict) -> dict:
    """Each configured limit with what it counts now, and the headroom left under the tightest (1: all free)."""
    shown = {kind: {"limit": v["limit"], "used": v["used"]} for kind, v in limits.items()}
    headroom = min((max(0.0, 1 - v["used"] / v["limit"]) for v in shown.values()), default=None)
    return {"limits": shown, "headroom": None if headroom is None else round(headroom, 4)}


def _vendors(rows: list[dict], total_served: int) -> list[dict]:
    vendors: dict[str, dict] = {}
    for row in rows:
        entry = vendors.setdefault(row["vendor"], {"vendor": row["vendor"], "requests_per_s": 0.0, "share": 0.0})
        entry["requests_per_s"] = round(entry["requests_per_s"] + row["requests_per_s"], 3)
        entry["share"] = round(entry["share"] + row["share"], 4)
    return sorted(vendors.values(), key=lambda v: -v["share"])


def _group(group: Any, figures: dict, concentration: dict | None) -> dict:
    served = {d.name: figures[d.name]["served"] if d.name in figures else 0 for d in group.deployments}
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
    if policy is not None and concentration is not None:
        amounts = concentration["amounts"]
        carried = sum(amounts.values())
        out["concentration"] = {
            "max_share": policy.max_share, "window_s": policy.window_s, "measure": policy.measure,
            "on_breach": policy.on_breach,
            "vendors": {v: round(a / carried, 4) if carried else 0.0 for v, a in sorted(amounts.items())},
            "over_cap": sorted(v for v, a in amounts.items() if carried > 0 and a > policy.max_share * carried),
            "breaches": concentration["breaches"],
            "refusals": concentration["refusals"],
        }
    return out


def _spend(rows: list[list], since: float) -> dict:
    """team -> model group -> vendor, billed US dollars (the ledger's figures), since the gateway started."""
    teams: dict[str, dict] = {}
    for team, group, vendor, usd in rows:
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
