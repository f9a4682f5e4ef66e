"""Several workers' /admin/stats parts (stats_part.py) as one gateway's: what `serve --workers N` answers.

Counts, rates, sums and spend add up; the hour's buckets add up once aligned on their start times (every worker's
buckets begin on the same ten-second boundaries, of the one system clock); each worker's breaker is kept beside
the others' (stats.py shows the worst); recent errors are merged newest last. A quota or vendor window read from
the shared (Redis) snapshot is already every replica's: it is taken once, not added. The result has a part's shape.
"""

from __future__ import annotations

from operator import add

from .activity import BUCKET_S, BUCKETS, RECENT_ERRORS

SERIES_FIELDS = ("ok", "failed", "latency_s")
SUMMED = ("requests_per_s", "errors_per_s", "ok", "latency_s", "served", "ejections", "in_flight")


def merge(own: dict, others: list[dict]) -> dict:
    """`own` (the answering worker's part: its time and state) with the other workers' parts."""
    if not others:
        return own
    parts = [own, *others]
    return {
        "time": own["time"],
        "uptime_s": max(p["uptime_s"] for p in parts),  # the oldest worker's age
        "since": min(p["since"] for p in parts),
        "series": _series([p["series"] for p in parts]),
        "deployments": {name: _deployment([p["deployments"][name] for p in parts if name in p["deployments"]])
                        for name in own["deployments"]},
        "concentration": {name: _concentration([p["concentration"][name] for p in parts
                                                if name in p["concentration"]])
                          for name in own["concentration"]},
        "spend": _spend([p["spend"] for p in parts]),
        "errors": sorted((e for p in parts for e in p["errors"]), key=lambda e: e["time"])[-RECENT_ERRORS:],
        "state": own["state"],
    }


def _series(parts: list[dict]) -> dict:
    """Bucket i of a part starting at `start` is bucket i + round((start - first) / step) of the merged hour."""
    first = min(p["start"] for p in parts)
    offsets = [round((p["start"] - first) / BUCKET_S) for p in parts]
    length = max(offset + len(next(iter(p["deployments"].values()), {}).get("ok", ()))
                 for offset, p in zip(offsets, parts))
    drop = max(0, length - BUCKETS)  # a part a bucket ahead of another: keep the latest hour
    out: dict[str, dict] = {}
    for offset, part in zip(offsets, parts):
        for name, series in part["deployments"].items():
            merged = out.get(name)
            if merged is None:
                merged = out[name] = {field: [0] * length for field in SERIES_FIELDS}
            for field in SERIES_FIELDS:
                values = series[field]
                end = offset + len(values)
                merged[field][offset:end] = map(add, merged[field][offset:end], values)
    return {"start": first + drop * BUCKET_S,
            "deployments": {name: {field: values[drop:] for field, values in series.items()}
                            for name, series in out.items()}}


def _deployment(parts: list[dict]) -> dict:
    out = {key: sum(p[key] for p in parts) for key in SUMMED}
    out["health"] = sorted((h for p in parts for h in p["health"]), key=lambda h: h["worker"])
    quota: dict[str, dict] = {}
    for part in parts:
        for kind, entry in part["quota"].items():
            have = quota.get(kind)
            if have is None:
                quota[kind] = dict(entry)
            elif entry["shared"] and have["shared"]:  # one count for everyone: the highest (the freshest) of them
                have["used"] = max(have["used"], entry["used"])
            else:  # each worker's count against its share of the limit
                have["used"] += entry["used"]
                have["limit"] += entry["limit"]
                have["shared"] = False
    out["quota"] = quota
    return out


def _concentration(parts: list[dict]) -> dict:
    shared = [p for p in parts if p["shared"]]
    if shared:  # every replica's window already: the one with the most in it
        amounts = max(shared, key=lambda p: sum(p["amounts"].values()))["amounts"]
    else:
        amounts = {}
        for part in parts:
            for vendor, amount in part["amounts"].items():
                amounts[vendor] = amounts.get(vendor, 0) + amount
    return {"amounts": amounts, "shared": bool(shared), "breaches": sum(p["breaches"] for p in parts),
            "refusals": sum(p["refusals"] for p in parts)}


def _spend(parts: list[list]) -> list[list]:
    totals: dict[tuple, float] = {}
    for rows in parts:
        for team, group, vendor, usd in rows:
            totals[team, group, vendor] = totals.get((team, group, vendor), 0.0) + usd
    return [[*key, usd] for key, usd in totals.items()]
