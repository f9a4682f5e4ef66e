"""A scenario file: the gateway configuration (inline or by `gateway: file.yaml`), the traffic, each deployment's
cloud, the events and the objective. Read once, validated with every mistake named by its YAML path, as the
gateway's own configuration is (see docs/simulate.md for every key).

The cloud of a deployment takes the emulator's keys (ttft_ms, tokens_per_second, jitter, quota, concurrency,
queue, provisioned, load_slowdown, prompt_cache), parsed by the emulator's own capacity reader: one mapping can
configure `skyrelay emulate` and `skyrelay simulate` alike.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import parse_config
from ..config import fields
from ..config.fields import Context, child, item
from ..config.model import Config, ConfigError, Problem
from ..config.source import parse_yaml, read_file
from ..emulator.capacity_config import CAPACITY_KEYS, CapacityConfigError, CapacitySettings, parse_capacity
from .traffic import Traffic, read_traffic

SCENARIO_KEYS = ("name", "gateway", "start", "duration_s", "seed", "engine", "objective", "traffic", "clouds",
                 "events", "sweep")
ENGINES = ("auto", "event", "flow")
TIMING_KEYS = ("ttft_ms", "tokens_per_second", "jitter", "distribution")
CLOUD_KEYS = (*TIMING_KEYS, *CAPACITY_KEYS)
DISTRIBUTIONS = ("uniform", "exponential")  # uniform: +-jitter, as the emulator; exponential: M/M/c service
OBJECTIVE_KEYS = ("ttft_ms", "latency_ms", "percentile", "max_error_rate")
EVENT_KINDS = ("outage", "quota", "price", "add")
EVENT_KEYS = ("at", "until", *EVENT_KINDS)
SWEEP_KEYS = ("field", "values", "cost_per_hour_each")
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class CloudModel:
    """How one deployment's cloud serves: its timing and the emulator's capacity settings."""

    ttft_ms: float = 20.0
    tokens_per_second: float = 500.0
    jitter: float = 0.0
    distribution: str = "uniform"
    capacity: CapacitySettings = CapacitySettings()


@dataclass(frozen=True, slots=True)
class Event:
    """One change at `at` seconds: an outage of `targets` until `until`, a cloud quota, a price, a deployment added."""

    kind: str
    at: float
    until: float | None
    targets: tuple[str, ...]  # deployment names
    values: dict = field(default_factory=dict)  # quota: rpm/tpm; price: Price fields


@dataclass(frozen=True, slots=True)
class Objective:
    ttft_ms: float | None = None
    latency_ms: float | None = None
    percentile: float = 95.0
    max_error_rate: float = 0.01


@dataclass(frozen=True, slots=True)
class Sweep:
    field: str  # a dotted path into the scenario (deployments.NAME.KEY reaches a gateway deployment)
    values: tuple[float, ...]
    cost_per_hour_each: tuple[str, float] | None = None  # (commitment, USD per hour per unit of the field)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    config: Config
    traffic: Traffic
    clouds: dict[str, CloudModel]  # every deployment's, by name
    events: tuple[Event, ...]
    objective: Objective
    start: datetime.datetime  # the simulated clock's 0, in UTC (commitments are dated)
    duration_s: float
    seed: int
    sweep: Sweep | None = None
    engine: str = "auto"  # event | flow | auto (event up to options.EVENT_LIMIT expected requests)
    raw: Mapping = field(default_factory=dict, repr=False)  # the document as read (sweeps edit and re-read it)
    base_dir: Path = Path(".")


def load_scenario(path: str | os.PathLike, *, env: Mapping[str, str] = os.environ) -> Scenario:
    text, problems = read_file(path)
    if text is None:
        raise ConfigError(problems, source=os.fspath(path))
    data, problems = parse_yaml(text)
    if problems:
        raise ConfigError(problems, source=os.fspath(path))
    return build_scenario(data, Path(path).parent, env=env, source=os.fspath(path))


def build_scenario(data: Any, base_dir: Path, *, env: Mapping[str, str] = os.environ,
                   source: str | None = None) -> Scenario:
    """The scenario, or ConfigError naming every problem by its path in the scenario file."""
    ctx = Context(env)
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("", "the scenario must be a mapping (gateway:, traffic:, clouds:)")], source)
    fields.check_keys(ctx, data, "", SCENARIO_KEYS, ignore_prefix="x-")
    config = _gateway(ctx, data.get("gateway"), base_dir, env)
    duration = fields.number(ctx, data, "", "duration_s", above=0, default=DAY)
    traffic = read_traffic(ctx, data.get("traffic"), config, duration)
    clouds = _clouds(ctx, data.get("clouds"), config)
    events = _events(ctx, data.get("events"), config, duration)
    objective = _objective(ctx, data.get("objective"))
    start = _start(ctx, data.get("start"))
    seed = fields.number(ctx, data, "", "seed", integer=True, minimum=0, default=1)
    sweep = read_sweep(ctx, data.get("sweep"), "sweep")
    name = fields.text(ctx, data, "", "name", default=Path(source).stem if source else "scenario")
    engine = fields.choice(ctx, data, "", "engine", ENGINES, default="auto")
    if ctx.problems or config is None:
        raise ConfigError(ctx.problems, source)
    return Scenario(name, config, traffic, clouds, events, objective, start, duration, seed, sweep, engine, data,
                    base_dir)


def _gateway(ctx: Context, value: Any, base_dir: Path, env: Mapping[str, str]) -> Config | None:
    """`gateway: file.yaml` (relative to the scenario) or the gateway configuration inline."""
    if value is None:
        ctx.add("gateway", "required, but missing", "the gateway configuration inline, or its file: gateway.yaml")
        return None
    if isinstance(value, str):
        target = base_dir / value
        text, problems = read_file(target)
        data = None
        if text is not None:
            data, problems = parse_yaml(text)
        if problems:
            for p in problems:
                ctx.add(f"gateway ({value})" + (f": {p.path}" if p.path else ""), p.message, p.hint)
            return None
        prefix = f"gateway ({value}): "
    else:
        data, prefix = value, "gateway."
    try:
        return parse_config(data, env=env)
    except ConfigError as exc:
        for p in exc.problems:
            ctx.add(prefix + p.path if prefix.endswith(".") else prefix + (p.path or "the file"), p.message, p.hint)
        return None


def _clouds(ctx: Context, value: Any, config: Config | None) -> dict[str, CloudModel]:
    names = [d.name for d in config.deployments()] if config is not None else []
    raw = fields.section(ctx, value, "clouds") or {}
    out = {}
    for name, body in raw.items():
        path = child("clouds", name)
        if config is not None and name not in names:
            ctx.add(path, "no deployment of the gateway configuration has this name",
                    fields.did_you_mean(name, names) or f"known: {', '.join(names)}")
            continue
        spec = fields.section(ctx, body, path, required=True)
        if spec is None:
            continue
        fields.check_keys(ctx, spec, path, CLOUD_KEYS)
        try:
            capacity = parse_capacity(spec, path).defaults
        except CapacityConfigError as exc:
            ctx.add("", str(exc))
            continue
        out[name] = CloudModel(
            ttft_ms=fields.number(ctx, spec, path, "ttft_ms", minimum=0, default=20.0),
            tokens_per_second=fields.number(ctx, spec, path, "tokens_per_second", above=0, default=500.0),
            jitter=fields.number(ctx, spec, path, "jitter", minimum=0, maximum=0.95, default=0.0),
            distribution=fields.choice(ctx, spec, path, "distribution", DISTRIBUTIONS, default="uniform"),
            capacity=capacity)
    for name in names:
        out.setdefault(name, CloudModel())
    return out


def _events(ctx: Context, value: Any, config: Config | None, duration: float) -> tuple[Event, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        ctx.add("events", f"expected a list of events, got {fields.type_name(value)}")
        return ()
    deployments = {d.name: d for d in config.deployments()} if config is not None else {}
    found = []
    for index, body in enumerate(value):
        path = item("events", index)
        raw = fields.section(ctx, body, path, required=True)
        if raw is None:
            continue
        event = read_event(ctx, raw, path, deployments, duration)
        if event is not None:
            found.append(event)
    return tuple(sorted(found, key=lambda e: e.at))


def read_event(ctx: Context, raw: Mapping, path: str, deployments: Mapping, duration: float) -> Event | None:
    fields.check_keys(ctx, raw, path, EVENT_KEYS)
    kinds = [k for k in EVENT_KINDS if k in raw]
    if len(kinds) != 1:
        ctx.add(path, f"an event is exactly one of {', '.join(EVENT_KINDS)}",
                "e.g. {outage: [aws-east], at: '14:00', until: '16:00'}")
        return None
    kind = kinds[0]
    at = _time(ctx, raw, path, "at", duration, required=True)
    until = _time(ctx, raw, path, "until", duration)
    if kind == "outage" and until is None and "until" not in raw:
        until = duration
    if at is not None and until is not None and until <= at:
        ctx.add(child(path, "until"), "must be after `at`")
    where = child(path, kind)
    body = raw[kind]
    values: dict = {}
    if kind in ("outage", "add"):
        targets = _targets(ctx, body, where, deployments)
    else:
        spec = fields.section(ctx, body, where, required=True) or {}
        target = spec.get("deployment")
        targets = _targets(ctx, target, child(where, "deployment"), deployments)
        known = ("deployment", "rpm", "tpm") if kind == "quota" else (
            "deployment", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "discount")
        fields.check_keys(ctx, spec, where, known)
        for key in known[1:]:
            number = fields.number(ctx, spec, where, key, minimum=0, integer=kind == "quota")
            if number is not None:
                values[key] = number
        if not values:
            ctx.add(where, f"give at least one of {', '.join(known[1:])}")
    if at is None or not targets:
        return None
    return Event(kind, at, until, targets, values)


def _targets(ctx: Context, value: Any, where: str, deployments: Mapping) -> tuple[str, ...]:
    """Deployment names, or regions (every deployment in that region)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        ctx.add(where, "expected a deployment (or region) name, or a list of them")
        return ()
    found: list[str] = []
    for index, name in enumerate(names):
        matched = [d for d in deployments if d == name or (deployments[d].region or "") == name]
        if not matched:
            ctx.add(where if isinstance(value, str) else item(where, index),
                    f"no deployment or region is named {name!r}",
                    fields.did_you_mean(name, deployments) or f"deployments: {', '.join(deployments)}")
        found += [m for m in matched if m not in found]
    return tuple(found)


def _time(ctx: Context, raw: Mapping, path: str, key: str, duration: float, *, required: bool = False):
    """Seconds from the start: a number, or "HH:MM" (of the first day)."""
    where = child(path, key)
    value = raw.get(key)
    if value is None:
        if required:
            ctx.add(where, "required, but missing", 'seconds from the start, or "HH:MM"')
        return None
    seconds = parse_time(value)
    if seconds is None:
        ctx.add(where, f"expected seconds or \"HH:MM\", got {value!r}", 'quote a clock time: "14:30"')
        return None
    if not 0 <= seconds <= duration:
        ctx.add(where, f"{value!r} is outside the simulated {duration:g} s")
        return None
    return seconds


def parse_time(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and ":" in value:
        try:
            hours, minutes = value.split(":", 1)
            return int(hours) * 3600.0 + int(minutes) * 60.0
        except ValueError:
            return None
    return None


def _objective(ctx: Context, value: Any) -> Objective:
    raw = fields.section(ctx, value, "objective")
    if raw is None:
        return Objective()
    fields.check_keys(ctx, raw, "objective", OBJECTIVE_KEYS)
    return Objective(
        ttft_ms=fields.number(ctx, raw, "objective", "ttft_ms", above=0),
        latency_ms=fields.number(ctx, raw, "objective", "latency_ms", above=0),
        percentile=fields.number(ctx, raw, "objective", "percentile", above=0, maximum=100, default=95.0),
        max_error_rate=fields.number(ctx, raw, "objective", "max_error_rate", minimum=0, maximum=1, default=0.01))


def _start(ctx: Context, value: Any) -> datetime.datetime:
    default = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    if value is None:
        return default
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    ctx.add("start", f"expected a date or time (2026-06-01 or 2026-06-01T00:00:00Z), got {value!r}")
    return default


def read_sweep(ctx: Context, value: Any, path: str) -> Sweep | None:
    raw = fields.section(ctx, value, path)
    if raw is None:
        return None
    fields.check_keys(ctx, raw, path, SWEEP_KEYS)
    target = fields.text(ctx, raw, path, "field", required=True, hint="e.g. clouds.aws-reserved.concurrency")
    values = sweep_values(raw.get("values"))
    if values is None:
        ctx.add(child(path, "values"), "expected LOW:HIGH:STEP (e.g. 8:64:8) or a list of numbers")
    each = None
    if raw.get("cost_per_hour_each") is not None:
        spec = fields.section(ctx, raw.get("cost_per_hour_each"), child(path, "cost_per_hour_each")) or {}
        if len(spec) != 1 or not all(isinstance(v, (int, float)) for v in spec.values()):
            ctx.add(child(path, "cost_per_hour_each"), "expected {COMMITMENT: USD per hour per unit}")
        else:
            each = next(iter(spec.items()))
    if target is None or values is None:
        return None
    return Sweep(target, values, each)


def sweep_values(value: Any) -> tuple[float, ...] | None:
    """LOW:HIGH:STEP (HIGH included) or a list of numbers."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value):
        return tuple(value)
    if not isinstance(value, str):
        return None
    try:
        low, high, step = (float(part) for part in value.split(":"))
    except ValueError:
        return None
    if step <= 0 or high < low:
        return None
    count = int((high - low) / step + 1e-9) + 1
    if count > 1000:
        return None
    whole = all(float(x).is_integer() for x in (low, high, step))
    return tuple(int(low + i * step) if whole else low + i * step for i in range(count))
