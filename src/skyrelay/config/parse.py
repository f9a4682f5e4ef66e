"""From the loaded YAML tree to a typed Config, collecting every problem on the way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..routing.strategies import STRATEGIES as _STRATEGY_TABLE
from . import fields
from .deployments import read_deployment
from .governance import read_keys, read_state, read_teams
from .health import read_health
from .money import read_commitments, read_database
from .policies import read_concentration, read_hedge, read_residency, read_routing
from .telemetry import read_logging, read_metrics, read_telemetry
from .fields import Context, child, item
from .model import (DEFAULT_BODY_TIMEOUT, DEFAULT_HEAD_TIMEOUT, DEFAULT_HOST, DEFAULT_MAX_ATTEMPTS,
                    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CLIENT_CONNECTIONS, DEFAULT_ON_UNSUPPORTED, DEFAULT_PORT,
                    DEFAULT_STRATEGY, UNSUPPORTED_POLICIES, Config, Deployment, LatencyObjective, ModelGroup, Problem,
                    RoutingDefaults,
                    ServerConfig)

TOP_LEVEL_KEYS = ("server", "model_groups", "health", "routing", "state", "teams", "keys", "metrics", "logging",
                  "telemetry", "database", "commitments")
SERVER_KEYS = ("host", "port", "max_body_bytes", "master_key", "max_connections", "head_timeout", "body_timeout")
GROUP_KEYS = ("strategy", "max_attempts", "fallbacks", "on_unsupported", "queue_timeout_ms", "latency_objective",
              "residency", "concentration", "context_fallbacks", "hedge", "deployments")
STRATEGIES = tuple(_STRATEGY_TABLE)  # routing's table is the one list of names
LATENCY_OBJECTIVE_KEYS = ("ttft_ms", "percentile")


def build(data: Any, env: Mapping[str, str]) -> tuple[Config | None, list[Problem]]:
    """The Config, or None with the problems that prevent it."""
    ctx = Context(env)
    if not isinstance(data, Mapping):
        ctx.add("", f"the top level must be a mapping (server:, model_groups:), got {fields.type_name(data)}")
        return None, ctx.problems
    fields.check_keys(ctx, data, "", TOP_LEVEL_KEYS, ignore_prefix="x-")  # x-*: a place for YAML anchors
    server = _server(ctx, data.get("server"))
    health = read_health(ctx, data.get("health"))
    metrics = read_metrics(ctx, data.get("metrics"))
    logging = read_logging(ctx, data.get("logging"))
    otlp = read_telemetry(ctx, data.get("telemetry"))
    routing = read_routing(ctx, data.get("routing"))
    groups = _model_groups(ctx, data.get("model_groups"), routing)
    raw_groups = data.get("model_groups")
    declared = [name for name in raw_groups if isinstance(name, str)] if isinstance(raw_groups, Mapping) else []
    _check_unique_names(ctx, groups)
    _check_fallbacks(ctx, groups, declared)
    state = read_state(ctx, data.get("state"))
    teams = read_teams(ctx, data.get("teams"), declared)
    keys = read_keys(ctx, data.get("keys"), declared, teams, server.master_key)
    database = read_database(ctx, data.get("database"))
    vendors = {d.name: d.vendor for group, _ in groups.values() for d in group.deployments}
    commitments = read_commitments(ctx, data.get("commitments"), vendors)
    if ctx.problems:
        return None, ctx.problems
    return Config(database=database, commitments=commitments, server=server, model_groups={name: group for name, (group, _) in groups.items()},
                  health=health, routing=routing, state=state, teams=teams, keys=keys, metrics=metrics,
                  logging=logging, otlp=otlp), []


def _server(ctx: Context, value: Any) -> ServerConfig:
    raw = fields.section(ctx, value, "server")
    if raw is None:
        return ServerConfig()
    fields.check_keys(ctx, raw, "server", SERVER_KEYS)
    host = fields.text(ctx, raw, "server", "host", default=DEFAULT_HOST)
    if "://" in host or "/" in host:
        ctx.add("server.host", f"expected a host name or address, got {ctx.show('server.host', host)}",
                "e.g. 127.0.0.1, or 0.0.0.0 for every interface")
    return ServerConfig(
        host=host,
        port=fields.number(ctx, raw, "server", "port", integer=True, minimum=0, maximum=65535,
                           default=DEFAULT_PORT),
        max_body_bytes=fields.number(ctx, raw, "server", "max_body_bytes", integer=True, above=0,
                                     default=DEFAULT_MAX_BODY_BYTES),
        master_key=fields.secret(ctx, raw, "server", "master_key"),
        max_connections=fields.number(ctx, raw, "server", "max_connections", integer=True, minimum=1,
                                      default=DEFAULT_MAX_CLIENT_CONNECTIONS),
        head_timeout=fields.number(ctx, raw, "server", "head_timeout", above=0, maximum=3600,
                                   default=DEFAULT_HEAD_TIMEOUT),
        body_timeout=fields.number(ctx, raw, "server", "body_timeout", above=0, maximum=3600,
                                   default=DEFAULT_BODY_TIMEOUT),
    )


# Each group is kept with the paths of its pieces, so cross-group problems can point at the right line.
_Located = tuple[ModelGroup, dict[str, Any]]


def _model_groups(ctx: Context, value: Any, routing: RoutingDefaults) -> dict[str, _Located]:
    raw = fields.section(ctx, value, "model_groups", required=True)
    if raw is None:
        return {}
    if not raw:
        ctx.add("model_groups", "no model groups defined", "add one, e.g. chat: {deployments: [...]}")
    groups: dict[str, _Located] = {}
    for name, body in raw.items():
        path = child("model_groups", name)
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            ctx.add(path, "a model group name must be a non-empty string without surrounding spaces",
                    "it is the model name clients send; quote it if YAML reads it as a number")
            continue
        located = _model_group(ctx, body, path, name, routing)
        if located is not None:
            groups[name] = located
    return groups


def _model_group(ctx: Context, value: Any, path: str, name: str, routing: RoutingDefaults) -> _Located | None:
    if value is None:
        ctx.add(path, "is empty: a model group needs at least one deployment", "add deployments: [...] below it")
        return None
    raw = fields.section(ctx, value, path)
    if raw is None:
        return None
    fields.check_keys(ctx, raw, path, GROUP_KEYS)
    strategy = fields.choice(ctx, raw, path, "strategy", STRATEGIES, default=DEFAULT_STRATEGY)
    max_attempts = fields.number(ctx, raw, path, "max_attempts", integer=True, minimum=1,
                                 default=DEFAULT_MAX_ATTEMPTS)
    fallbacks = fields.string_list(ctx, raw, path, "fallbacks")
    context_fallbacks = fields.string_list(ctx, raw, path, "context_fallbacks")
    on_unsupported = fields.choice(ctx, raw, path, "on_unsupported", UNSUPPORTED_POLICIES,
                                   default=DEFAULT_ON_UNSUPPORTED)
    queue_timeout_ms = fields.number(ctx, raw, path, "queue_timeout_ms", integer=True, minimum=0, default=0)
    latency_objective = _latency_objective(ctx, raw, path, strategy)
    deployments, deployment_paths = _deployments(ctx, raw.get("deployments"), child(path, "deployments"), name)
    group = ModelGroup(name=name, strategy=strategy, max_attempts=max_attempts,
                       fallbacks=tuple(target for _, target in fallbacks), deployments=tuple(deployments),
                       on_unsupported=on_unsupported, queue_timeout_ms=queue_timeout_ms, tiers=_tiers(deployments),
                       latency_objective=latency_objective,
                       residency=read_residency(ctx, raw, path),
                       concentration=read_concentration(ctx, raw, path) or routing.concentration,
                       context_fallbacks=tuple(target for _, target in context_fallbacks),
                       hedge=read_hedge(ctx, raw, path, deployments, fallbacks))
    return group, {"fallbacks": fallbacks, "context_fallbacks": context_fallbacks, "deployments": deployment_paths}


def _latency_objective(ctx: Context, raw: Mapping, path: str, strategy: str) -> LatencyObjective | None:
    where = child(path, "latency_objective")
    section = fields.section(ctx, raw.get("latency_objective"), where)
    if section is None:
        if strategy == "cheapest_within":
            ctx.add(where, "strategy cheapest_within needs a latency objective to keep",
                    "e.g. latency_objective: {ttft_ms: 800, percentile: 95}")
        return None
    fields.check_keys(ctx, section, where, LATENCY_OBJECTIVE_KEYS)
    return LatencyObjective(
        ttft_ms=fields.number(ctx, section, where, "ttft_ms", above=0, required=True, default=1000.0),
        percentile=fields.number(ctx, section, where, "percentile", above=0, maximum=100, default=95.0),
    )


def _tiers(deployments: list[Deployment]) -> tuple:
    """The deployments by ascending tier, each tier in file order; () when all are in one tier."""
    levels = sorted({d.tier for d in deployments})
    if len(levels) < 2:
        return ()
    return tuple(tuple(d for d in deployments if d.tier == level) for level in levels)


def _deployments(ctx: Context, value: Any, path: str, group: str) -> tuple[list[Deployment], list[tuple[str, bool]]]:
    """The deployments, and for each its path and whether it was named (or took the default name)."""
    if value is None or value == []:
        ctx.add(path, "a model group needs at least one deployment", "add a list of deployments: - kind: ...")
        return [], []
    if not isinstance(value, list):
        ctx.add(path, f"expected a list of deployments, got {fields.type_name(value)}",
                "start each deployment with '- ' (a YAML list item)")
        return [], []
    deployments, paths = [], []
    for index, raw in enumerate(value):
        entry = item(path, index)
        if not isinstance(raw, Mapping):
            ctx.add(entry, f"expected a mapping (kind:, model:, ...), got {fields.type_name(raw)}")
            continue
        deployments.append(read_deployment(ctx, raw, entry, group, index))
        paths.append((entry, raw.get("name") is not None))
    return deployments, paths


def _check_unique_names(ctx: Context, groups: dict[str, _Located]) -> None:
    first_use: dict[str, str] = {}
    for group, located in groups.values():
        for deployment, (path, named) in zip(group.deployments, located["deployments"]):
            earlier = first_use.setdefault(deployment.name, path)
            if earlier == path:
                continue
            if named:
                ctx.add(child(path, "name"), f"deployment name {deployment.name!r} is already used by {earlier}",
                        "deployment names must be unique across the whole file")
            else:
                ctx.add(child(path, "name"), f"the default name {deployment.name!r} is already used by {earlier}",
                        "give this deployment a name of its own")


def _check_fallbacks(ctx: Context, groups: dict[str, _Located], declared: list[str]) -> None:
    """Fallbacks (and context fallbacks) must name other declared groups (a group that failed to parse was
    reported already)."""
    for name, (_, located) in groups.items():
        for key in ("fallbacks", "context_fallbacks"):
            _check_targets(ctx, name, located[key], declared)


def _check_targets(ctx: Context, name: str, targets: list[tuple[str, str]], declared: list[str]) -> None:
    seen: set[str] = set()
    for path, target in targets:
        if target == name:
            ctx.add(path, "a model group cannot fall back to itself", "name another model group")
        elif target not in declared:
            ctx.add(path, f"unknown model group {ctx.show(path, target)}",
                    fields.did_you_mean(target, declared) or f"model groups: {', '.join(declared)}")
        elif target in seen:
            ctx.add(path, f"{target!r} is listed twice")
        seen.add(target)
