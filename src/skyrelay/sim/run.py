"""`skyrelay simulate FILE --out DIR`: run a scenario (or a sweep of one field) and write the report and plots.

    skyrelay simulate examples/sim-peak-day.yaml --out out/
    skyrelay simulate FILE --engine flow                      # event (default up to EVENT_LIMIT requests) | flow
    skyrelay simulate FILE --sweep clouds.aws-reserved.concurrency=8:64:8
    skyrelay simulate FILE --event outage=aws-east@14:00-16:00
    skyrelay simulate FILE --duration 3600                    # simulate only the first hour (a quick look)
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config.model import ConfigError, Problem
from ..config.source import parse_yaml, read_file
from .event import run_event_engine
from .flow import run_flow_engine
from .report import build_report, summary_text
from .options import EVENT_LIMIT
from .scenario import Scenario, build_scenario, sweep_values

def main(args) -> int:
    try:
        raw = read_raw(args.file)
        raw = with_overrides(raw, args.event, args.duration)
        base = Path(args.file).parent
        scenario = build_scenario(raw, base, source=args.file)
        sweep = scenario.sweep
        if args.sweep:
            sweep = parse_sweep_option(args.sweep)
        out = Path(args.out)
        if sweep is not None:
            return run_sweep(raw, base, args.file, sweep, args.engine, out, args.quiet)
        report = simulate(scenario, args.engine, args.quiet)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    write(report, out)
    print(summary_text(report))
    print(f"report: {out / 'report.json'}; plots: {', '.join(p.name for p in sorted(out.glob('*.png')))}")
    return 0


def read_raw(path: str) -> dict:
    text, problems = read_file(path)
    if text is not None:
        data, problems = parse_yaml(text)
        if not problems:
            if not isinstance(data, dict):
                raise ConfigError([Problem("", "the scenario must be a mapping (gateway:, traffic:, clouds:)")],
                                  path)
            return data
    raise ConfigError(problems, path)


def with_overrides(raw: dict, events: list[str], duration: float | None) -> dict:
    raw = copy.deepcopy(raw)
    for text in events:
        raw.setdefault("events", [])
        if not isinstance(raw["events"], list):
            break
        raw["events"].append(parse_event_option(text))
    if duration is not None:
        if duration <= 0:
            raise ConfigError([Problem("--duration", "must be > 0")])
        raw["duration_s"] = min(duration, float(raw.get("duration_s") or 86400.0))
        # what starts after the shortened run is left out; what ends after it is cut at its end
        raw["events"] = _within(raw.get("events"), raw["duration_s"])
        if isinstance(raw.get("traffic"), dict) and raw["traffic"].get("bursts") is not None:
            raw["traffic"] = {**raw["traffic"], "bursts": _within(raw["traffic"]["bursts"], raw["duration_s"])}
    return raw


def _within(items, duration: float):
    from .scenario import parse_time

    if not isinstance(items, list):
        return items
    kept = []
    for entry in items:
        if isinstance(entry, dict):
            start = parse_time(entry.get("at"))
            if start is not None and start >= duration:
                continue
            end = parse_time(entry.get("until"))
            if end is not None and end > duration:
                entry = {**entry, "until": duration}
        kept.append(entry)
    return kept


def parse_event_option(text: str) -> dict:
    """outage=NAME@START-END -> the event mapping the scenario file would hold."""
    kind, _, rest = text.partition("=")
    target, _, span = rest.partition("@")
    start, _, end = span.partition("-")
    if kind != "outage" or not target or not start:
        raise ConfigError([Problem("--event", f"expected outage=DEPLOYMENT@START-END, got {text!r}",
                                   "e.g. --event outage=aws-east@14:00-16:00")])
    event: dict[str, Any] = {"outage": [target], "at": _number_or_text(start)}
    if end:
        event["until"] = _number_or_text(end)
    return event


def _number_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def parse_sweep_option(text: str):
    from .scenario import Sweep

    field, _, values = text.partition("=")
    parsed = sweep_values(values)
    if not field or parsed is None:
        raise ConfigError([Problem("--sweep", f"expected FIELD=LOW:HIGH:STEP, got {text!r}",
                                   "e.g. --sweep deployments.aws-reserved.rpm=0:20000:2000")])
    return Sweep(field, parsed)


def simulate(scenario: Scenario, engine: str | None = None, quiet: bool = True) -> dict:
    engine = engine or scenario.engine
    if engine == "auto":
        expected = float(scenario.traffic.rate(np.arange(0.0, scenario.duration_s, 60.0) + 30).mean()
                          * scenario.duration_s)
        engine = "event" if expected <= EVENT_LIMIT else "flow"
    bar = None if quiet else ProgressBar(f"{scenario.name} ({engine})")
    began = time.perf_counter()
    run = run_event_engine if engine == "event" else run_flow_engine
    tally = run(scenario, bar.update if bar else None)
    wall = time.perf_counter() - began
    if bar:
        bar.done()
    return build_report(scenario, tally, wall)


def write(report: dict, out: Path) -> None:
    from .plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    write_plots(report, out)


class ProgressBar:
    def __init__(self, label: str, width: int = 30):
        self.label, self.width = label, width
        self.tty = sys.stderr.isatty()
        self.last = -1

    def update(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent == self.last or (not self.tty and percent % 25):
            return
        self.last = percent
        filled = int(self.width * fraction)
        end = "\r" if self.tty else "\n"
        sys.stderr.write(f"{self.label} [{'#' * filled}{' ' * (self.width - filled)}] {percent:3d}%{end}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


# --- sweeps ---------------------------------------------------------------------------------------------------------

def set_field(raw: dict, base: Path, field: str, value: float) -> dict:
    """A copy of the scenario with `field` (dotted) set; deployments.NAME.KEY reaches the gateway deployment NAME
    (an included gateway file is read in), anything else is a path into the scenario itself."""
    raw = copy.deepcopy(raw)
    parts = field.split(".")
    if parts[0] == "deployments" and len(parts) >= 3:
        gateway = raw.get("gateway")
        if isinstance(gateway, str):
            gateway = raw["gateway"] = read_raw(str(base / gateway))
        for group in (gateway or {}).get("model_groups", {}).values():
            for d in (group or {}).get("deployments", []):
                if isinstance(d, dict) and d.get("name") == parts[1]:
                    _set_path(d, parts[2:], value, field)
                    return raw
        raise ConfigError([Problem("--sweep", f"no deployment is named {parts[1]!r}")])
    _set_path(raw, parts, value, field)
    return raw


def _set_path(node: dict, parts: list[str], value: float, field: str) -> None:
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError([Problem("--sweep", f"{field}: {part} is not a mapping")])
        node = nxt
    node[parts[-1]] = value


def run_sweep(raw: dict, base: Path, source: str, sweep, engine: str, out: Path, quiet: bool) -> int:
    from .plots import write_frontier

    points: list[dict] = []
    skipped: list[dict] = []
    best = None
    for value in sweep.values:
        edited = set_field(raw, base, sweep.field, value)
        try:
            scenario = build_scenario(edited, base, source=f"{source} ({sweep.field}={value:g})")
        except ConfigError as exc:  # e.g. rpm: 0, which a gateway refuses: that point is left out, not the sweep
            skipped.append({"value": value, "skipped": str(exc.problems[0])})
            print(f"  {sweep.field}={value:g}: skipped ({exc.problems[0]})")
            continue
        if sweep.cost_per_hour_each is not None:
            scenario = _priced(scenario, sweep.cost_per_hour_each, value)
        report = simulate(scenario, engine, quiet)
        overall = report["slo"]["overall"]
        point = {"value": value, "total_usd": report["cost"]["total_usd"], "met": overall["met"],
                 "objective_ttft_ms": overall["objective_ttft_ms"], "error_rate": overall["error_rate"],
                 "spillover_share": report["spillover"]["share"]}
        points.append(point)
        if point["met"] and (best is None or point["total_usd"] < best["total_usd"]):
            best = point
        print(f"  {sweep.field}={value:g}: cost {point['total_usd']:,.0f} USD, p{report['objective']['percentile']:g}"
              f" TTFT {point['objective_ttft_ms']} ms, errors {point['error_rate']:.2%}, "
              f"{'meets' if point['met'] else 'misses'} the objective")
    if not points:
        raise ConfigError([Problem("--sweep", f"no value of {sweep.field} gives a valid scenario")])
    out.mkdir(parents=True, exist_ok=True)
    result = {"field": sweep.field, "points": points, "skipped": skipped, "cheapest_meeting_objective": best,
              "objective": report["objective"]}
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    write_frontier(points, sweep.field, best, report["objective"], out / "frontier.png")
    if best is None:
        print(f"no value of {sweep.field} meets the objective")
    else:
        print(f"cheapest meeting the objective: {sweep.field}={best['value']:g} ({best['total_usd']:,.0f} USD)")
    print(f"sweep: {out / 'sweep.json'}; plot: {out / 'frontier.png'}")
    return 0


def _priced(scenario: Scenario, each: tuple[str, float], value: float) -> Scenario:
    """The named reserved commitment's hourly cost scaled with the swept size."""
    import dataclasses

    name, usd = each
    commitments = tuple(dataclasses.replace(c, cost_per_hour=usd * value) if c.name == name else c
                        for c in scenario.config.commitments)
    if not any(c.name == name for c in commitments):
        raise ConfigError([Problem("sweep.cost_per_hour_each", f"no commitment is named {name!r}")])
    config = dataclasses.replace(scenario.config, commitments=commitments)
    return dataclasses.replace(scenario, config=config)
