"""A run's report: SLO attainment overall and per interval, traffic and spend per vendor and deployment, spillover
and its extra cost, commitments, vendor concentration against its cap, and the breaches; as a JSON-ready dict
and as the terminal summary."""

from __future__ import annotations

import numpy as np

from . import money
from .scenario import Scenario
from .tally import Tally, percentile_of

PERCENTILES = (50, 95, 99)


def build_report(scenario: Scenario, tally: Tally, wall_s: float | None = None) -> dict:
    listed, billed, extra = money.costs(scenario, tally)
    reserved = money.reserved_paid(scenario)
    deployments = {d.name: d for d in scenario.config.deployments()}
    served_total = float(tally.served.sum())
    arrivals = float(tally.arrivals.sum())
    report = {
        "scenario": scenario.name, "engine": tally.engine, "duration_s": scenario.duration_s,
        "interval_s": tally.interval_s, "requests": arrivals, "served": served_total,
        "wall_s": wall_s, "objective": _objective(scenario),
        "slo": _slo(scenario, tally),
        "deployments": {}, "vendors": {}, "teams": {},
        "spillover": {"requests": float(tally.spilled.sum()),
                      "share": float(tally.spilled.sum() / served_total) if served_total else 0.0,
                      "extra_cost_usd": float(extra.sum()),
                      "per_interval": tally.spilled.sum(axis=0).tolist(),
                      "extra_cost_per_interval_usd": extra.sum(axis=0).tolist()},
        "failovers": float(tally.failovers.sum()), "cloud_refusals": dict(tally.cloud_refusals),
        "cost": {"usage_billed_usd": float(billed.sum()), "usage_list_usd": float(listed.sum()),
                 "reserved_usd": reserved, "total_usd": float(billed.sum()) + reserved},
    }
    for k, name in enumerate(tally.deployments):
        d = deployments[name]
        report["deployments"][name] = {
            "vendor": d.vendor, "tier": d.tier, "group": d.group, "requests": float(tally.served[k].sum()),
            "share": float(tally.served[k].sum() / served_total) if served_total else 0.0,
            "spilled": float(tally.spilled[k].sum()), "input_tokens": float(tally.input_tokens[k].sum()),
            "output_tokens": float(tally.output_tokens[k].sum()), "list_usd": float(listed[k].sum()),
            "billed_usd": float(billed[k].sum()),
            "queued_share": float(tally.waited[k] / max(tally.served[k].sum(), 1e-12)),
            "mean_queue_wait_ms": float(tally.wait_s[k] / max(tally.served[k].sum(), 1e-12) * 1000),
            "requests_per_interval": tally.served[k].tolist(), "billed_per_interval_usd": billed[k].tolist()}
    for vendor in sorted({d.vendor for d in deployments.values()}):
        rows = [k for k, n in enumerate(tally.deployments) if deployments[n].vendor == vendor]
        per = tally.served[rows].sum(axis=0)
        total = tally.served.sum(axis=0)
        report["vendors"][vendor] = {
            "requests": float(per.sum()), "share": float(per.sum() / served_total) if served_total else 0.0,
            "billed_usd": float(billed[rows].sum()),
            "share_per_interval": np.where(total > 0, per / np.where(total > 0, total, 1), 0).tolist(),
            "billed_per_interval_usd": billed[rows].sum(axis=0).tolist()}
    ratio = np.where(listed.sum(axis=1) > 0, billed.sum(axis=1) / np.maximum(listed.sum(axis=1), 1e-12), 0)
    for t, team in enumerate(tally.teams):
        report["teams"][team] = {"requests": float(tally.team_requests[t].sum()),
                                 "billed_usd": float(sum(_team_cost(scenario, tally, t, k) * ratio[k]
                                                         for k in range(len(tally.deployments))))}
    report["commitments"] = money.commitments(scenario, tally, listed)
    report["concentration"] = _concentration(scenario, tally)
    report["breaches"] = _breaches(report)
    return report


def _team_cost(scenario: Scenario, tally: Tally, t: int, k: int) -> float:
    price = scenario.config.deployment(tally.deployments[k]).price
    return (tally.team_input[t, k] * price.input_per_mtok + tally.team_output[t, k] * price.output_per_mtok) / 1e6


def _objective(scenario: Scenario) -> dict:
    o = scenario.objective
    return {"ttft_ms": o.ttft_ms, "latency_ms": o.latency_ms, "percentile": o.percentile,
            "max_error_rate": o.max_error_rate}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _slo(scenario: Scenario, tally: Tally) -> dict:
    objective = scenario.objective

    def summary(latency, ttft, arrivals, errors, throttled) -> dict:
        out = {f"latency_p{p}_ms": _ms(percentile_of(latency, p)) for p in PERCENTILES}
        out.update({f"ttft_p{p}_ms": _ms(percentile_of(ttft, p)) for p in PERCENTILES})
        out["objective_ttft_ms"] = _ms(percentile_of(ttft, objective.percentile))
        out["objective_latency_ms"] = _ms(percentile_of(latency, objective.percentile))
        out["error_rate"] = float(errors / arrivals) if arrivals else 0.0
        out["throttled_rate"] = float(throttled / arrivals) if arrivals else 0.0
        out["met"] = _meets(out, objective)
        return out

    overall = summary(tally.latency.sum(0), tally.ttft.sum(0), tally.arrivals.sum(), tally.errors.sum(),
                      tally.throttled.sum())
    per = [summary(tally.latency[b], tally.ttft[b], tally.arrivals[b], tally.errors[b], tally.throttled[b])
           for b in range(tally.buckets)]
    overall["intervals_met"] = sum(1 for p in per if p["met"])
    return {"overall": overall, "per_interval": per}


def _meets(row: dict, objective) -> bool:
    if row["error_rate"] > objective.max_error_rate:
        return False
    if objective.ttft_ms is not None and (row["objective_ttft_ms"] or 0) > objective.ttft_ms:
        return False
    if objective.latency_ms is not None and (row["objective_latency_ms"] or 0) > objective.latency_ms:
        return False
    return True


def _concentration(scenario: Scenario, tally: Tally) -> dict:
    out = {}
    for name, group in scenario.config.model_groups.items():
        policy = group.concentration
        if policy is None:
            continue
        rows = {}
        for k, dep in enumerate(tally.deployments):
            d = scenario.config.deployment(dep)
            if d.group == name:
                rows.setdefault(d.vendor, []).append(k)
        total = sum(tally.served[r].sum(axis=0) for r in rows.values())
        shares = {v: np.where(total > 0, tally.served[r].sum(axis=0) / np.where(total > 0, total, 1), 0)
                  for v, r in rows.items()}
        out[name] = {"max_share": policy.max_share, "on_breach": policy.on_breach,
                     "vendor_share": {v: float(tally.served[r].sum() / max(total.sum(), 1e-12))
                                      for v, r in rows.items()},
                     "peak_interval_share": {v: float(s.max()) for v, s in shares.items()},
                     "intervals_over_cap": int(sum((s > policy.max_share + 1e-9).sum() for s in shares.values())),
                     "breaches": tally.breaches}
    return out


def _breaches(report: dict) -> list[str]:
    out = []
    slo = report["slo"]
    for b, row in enumerate(slo["per_interval"]):
        if not row["met"] and report["requests"]:
            out.append(f"interval {b}: objective missed (p{report['objective']['percentile']:g} TTFT "
                       f"{row['objective_ttft_ms']} ms, error rate {row['error_rate']:.2%})")
    for group, c in report["concentration"].items():
        if c["intervals_over_cap"]:
            out.append(f"{group}: a vendor over its {c['max_share']:.0%} cap in {c['intervals_over_cap']} interval(s)")
    for c in report["commitments"]:
        if c["kind"] == "spend" and c.get("runs_out"):
            out.append(f"commitment {c['name']}: runs out on {c['runs_out']}")
        if c["kind"] == "reserved" and c["verdict"].startswith("under"):
            out.append(f"commitment {c['name']}: under-burns ({c['list_value_usd']:,.0f} USD of list-price usage "
                       f"for {c['paid_usd']:,.0f} USD paid)")
    return out


def summary_text(report: dict) -> str:
    o = report["slo"]["overall"]
    objective = report["objective"]
    lines = [f"scenario {report['scenario']} ({report['engine']} engine): {report['requests']:,.0f} requests over "
             f"{report['duration_s']:,.0f} s" + (f" in {report['wall_s']:.1f} s" if report.get("wall_s") else ""),
             f"  latency p50/p95/p99: {o['latency_p50_ms']} / {o['latency_p95_ms']} / {o['latency_p99_ms']} ms; "
             f"TTFT p50/p95/p99: {o['ttft_p50_ms']} / {o['ttft_p95_ms']} / {o['ttft_p99_ms']} ms",
             f"  errors {o['error_rate']:.2%} (429: {o['throttled_rate']:.2%}); objective "
             f"(p{objective['percentile']:g} TTFT <= {objective['ttft_ms']} ms): "
             f"{'met' if o['met'] else 'MISSED'}, in {o['intervals_met']}/{len(report['slo']['per_interval'])} "
             f"intervals"]
    lines.append("  vendors: " + ", ".join(f"{v} {x['share']:.1%} ({x['billed_usd']:,.0f} USD)"
                                           for v, x in report["vendors"].items()))
    s = report["spillover"]
    lines.append(f"  spillover: {s['requests']:,.0f} requests ({s['share']:.1%}), {s['extra_cost_usd']:,.0f} USD "
                 "more than the first tier")
    c = report["cost"]
    lines.append(f"  cost: {c['total_usd']:,.0f} USD ({c['usage_billed_usd']:,.0f} usage + "
                 f"{c['reserved_usd']:,.0f} reserved)")
    for commitment in report["commitments"]:
        lines.append(f"  commitment {commitment['name']} ({commitment['kind']}): {commitment['verdict']}")
    for breach in report["breaches"][:8]:
        lines.append(f"  ! {breach}")
    if len(report["breaches"]) > 8:
        lines.append(f"  ! ... and {len(report['breaches']) - 8} more (see report.json)")
    return "\n".join(lines)
