"""The report as pictures (matplotlib, Agg: no display needed): vendor shares over the run, latency percentiles
against the objective, spillover, commitment burn-down, and a sweep's cost / SLO frontier."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

_SIZE = (7, 3.6)
_DPI = 80  # small PNGs: they are committed to the docs


def write_plots(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [_shares(report, out / "vendor_share.png"), _latency(report, out / "latency.png"),
               _spillover(report, out / "spillover.png")]
    if report["commitments"]:
        written.append(_burn_down(report, out / "burn_down.png"))
    return written


def _hours(report: dict, n: int) -> tuple[np.ndarray, str]:
    step = report["interval_s"]
    if step >= 3600:
        return np.arange(n) * step / 3600, "hour"
    return np.arange(n) * step, "simulated seconds"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _shares(report: dict, path: Path) -> Path:
    vendors = report["vendors"]
    n = len(next(iter(vendors.values()))["share_per_interval"])
    x, unit = _hours(report, n)
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.stackplot(x, *[np.array(v["share_per_interval"]) * 100 for v in vendors.values()], labels=list(vendors),
                 step="post")
    for group, c in report["concentration"].items():
        ax.axhline(c["max_share"] * 100, color="black", linestyle="--", linewidth=1, label=f"{group} cap")
    ax.set(xlabel=unit, ylabel="share of requests (%)", ylim=(0, 100), title="Traffic share per vendor")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _latency(report: dict, path: Path) -> Path:
    rows = report["slo"]["per_interval"]
    x, unit = _hours(report, len(rows))
    fig, ax = plt.subplots(figsize=_SIZE)
    for p, style in ((50, ":"), (95, "-"), (99, "--")):
        ax.plot(x, [r[f"ttft_p{p}_ms"] for r in rows], style, label=f"TTFT p{p}", drawstyle="steps-post")
    ax.plot(x, [r["latency_p95_ms"] for r in rows], "-", alpha=0.5, label="latency p95", drawstyle="steps-post")
    objective = report["objective"]
    if objective["ttft_ms"]:
        ax.axhline(objective["ttft_ms"], color="red", linewidth=1,
                   label=f"objective p{objective['percentile']:g} TTFT")
    ax.set(xlabel=unit, ylabel="ms", title="Latency percentiles", yscale="log")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _spillover(report: dict, path: Path) -> Path:
    s = report["spillover"]
    x, unit = _hours(report, len(s["per_interval"]))
    fig, ax = plt.subplots(figsize=_SIZE)
    width = (x[1] - x[0]) * 0.9 if len(x) > 1 else 1
    ax.bar(x, s["per_interval"], width=width, align="edge", label="spilled requests")
    errors = [r["error_rate"] for r in report["slo"]["per_interval"]]
    arrivals = report["requests"] / max(len(errors), 1)
    ax.plot(x, np.array(errors) * arrivals, "r-", drawstyle="steps-post", label="errors (approx.)")
    ax.set(xlabel=unit, ylabel="requests per interval",
           title=f"Spillover past the first tier: {s['share']:.1%}, {s['extra_cost_usd']:,.0f} USD extra")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _burn_down(report: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(report["commitments"]), figsize=(_SIZE[0], _SIZE[1]), squeeze=False)
    for ax, c in zip(axes[0], report["commitments"]):
        if c["kind"] == "spend":
            days = np.linspace(0, c["term_days"], 50)
            ax.plot(days, np.maximum(c["amount_usd"] - c["per_day_usd"] * days, 0), label="projected balance")
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set(xlabel="days into the term", ylabel="USD left", title=f"{c['name']} (spend)")
        else:
            x, unit = _hours(report, len(c["cumulative_paid_usd"]))
            ax.plot(x, c["cumulative_paid_usd"], label="paid")
            ax.plot(x, c["cumulative_value_usd"], label="served, at list price")
            ax.set(xlabel=unit, ylabel="USD", title=f"{c['name']} (reserved)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def write_frontier(points: list[dict], field: str, best: dict | None, objective: dict, path: Path) -> Path:
    """Cost against the objective's percentile of TTFT for each swept value; the cheapest one meeting it ringed."""
    fig, ax = plt.subplots(figsize=_SIZE)
    xs = [p["total_usd"] for p in points]
    ys = [p["objective_ttft_ms"] or 0 for p in points]
    colors = ["tab:green" if p["met"] else "tab:red" for p in points]
    ax.scatter(xs, ys, c=colors)
    for p, x, y in zip(points, xs, ys):
        ax.annotate(f"{p['value']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if objective["ttft_ms"]:
        ax.axhline(objective["ttft_ms"], color="red", linewidth=1, label="objective")
    if best is not None:
        ax.scatter([best["total_usd"]], [best["objective_ttft_ms"]], s=200, facecolors="none", edgecolors="black",
                   label=f"cheapest meeting it: {best['value']:g}")
    ax.set(xlabel="cost of the run (USD)", ylabel=f"p{objective['percentile']:g} TTFT (ms)", yscale="log",
           title=f"Sweep of {field}")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)
