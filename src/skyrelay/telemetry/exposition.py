"""Prometheus text exposition (format 0.0.4) of the counters, plus the routing state read at scrape time."""

from __future__ import annotations

from typing import Any, Iterable

from ..routing.health import CIRCUIT_OPEN, COOLING_DOWN, PROBE_IN_FLIGHT
from .metrics import STATUS_CLASSES, Histogram, Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half_open")


def render(metrics: Metrics, dispatcher: Any, deployments: list[Any], telemetry: Any) -> bytes:
    out: list[str] = []
    groups, routes = metrics.groups, metrics.routes
    requests = {(g, cls): n for g, stats in groups.items() for cls, n in zip(STATUS_CLASSES, stats.by_class) if n}
    _counter(out, "skyrelay_requests_total", "Requests that reached a model group, by how they ended.",
             ("model_group", "code_class"), requests)
    _counter(out, "skyrelay_unrouted_requests_total",
             "Requests answered before reaching a model group (refused, unknown model, listings, health, "
             "metrics, the admin API).",
             ("route", "code_class"), metrics.unrouted)
    _counter(out, "skyrelay_attempts_total", "Attempts at a deployment, by result (ok, failed, refused, abandoned, cancelled).",
             ("model_group", "deployment", "vendor", "result"),
             {(g, d, r.vendor, result): n for (g, d), r in routes.items() for result, n in r.results.items()})
    _counter(out, "skyrelay_attempt_errors_total", "Attempts that ended in an error, by the error's class.",
             ("deployment", "error"), metrics.attempt_errors)
    _counter(out, "skyrelay_hedged_requests_total", "Requests that sent a hedge attempt, and those the hedge answered.",
             ("model_group", "winner"), {(g, w): n for g, stats in groups.items()
                                         for w, n in (("hedge", stats.hedge_wins),
                                                      ("first", stats.hedged - stats.hedge_wins)) if stats.hedged})
    _counter(out, "skyrelay_failovers_total", "Requests served by a deployment after an earlier attempt failed.",
             ("model_group", "deployment"), {key: r.failovers for key, r in routes.items() if r.failovers})
    tokens = {(*key, kind): n for key, r in routes.items()
              for kind, n in (("input", r.input), ("output", r.output), ("cached", r.cached)) if n}
    _counter(out, "skyrelay_tokens_total", "Tokens the clouds reported (cached: the part of input from a cache).",
             ("model_group", "deployment", "type"), tokens)
    priced = metrics.pricing.priced
    _counter(out, "skyrelay_cost_usd_total", "Billed spend in US dollars, as the ledger records it (discounts and "
             "commitments applied).", ("model_group", "deployment"),
             {key: r.cost for key, r in routes.items() if key[1] in priced})
    _counter(out, "skyrelay_list_cost_usd_total", "The same usage at the deployments' list prices, in US dollars.",
             ("model_group", "deployment"), {key: r.list_cost for key, r in routes.items() if key[1] in priced})
    _histograms(out, "skyrelay_request_duration_seconds", "From dispatch to the request's end (a stream's last byte).",
                ("model_group",), {(g,): stats.latency for g, stats in groups.items()})
    _histograms(out, "skyrelay_time_to_first_token_seconds", "A stream's time from dispatch to its first output.",
                ("model_group",), {(g,): stats.ttft for g, stats in groups.items() if any(stats.ttft.counts)})
    _histograms(out, "skyrelay_attempt_duration_seconds", "Successful attempts at a deployment, per model group.",
                ("model_group", "deployment"), {key: r.latency for key, r in routes.items() if any(r.latency.counts)})
    if metrics.teams:
        _counter(out, "skyrelay_team_requests_total", "Requests of keys that belong to a team, by how they ended.",
                 ("team", "model_group", "code_class"),
                 {(t, g, cls): n for (t, g), stats in metrics.teams.items()
                  for cls, n in zip(STATUS_CLASSES, stats.by_class) if n})
        _counter(out, "skyrelay_team_cost_usd_total", "Billed spend of keys that belong to a team, in US dollars.",
                 ("team", "model_group"), {key: sum(stats.cost.values()) for key, stats in metrics.teams.items()})
    _routing_state(out, dispatcher, deployments)
    _counter(out, "skyrelay_deployment_ejections_total", "Times the deployment's breaker opened (left rotation).",
             ("deployment",), {(name,): telemetry.events.ejections.get(name, 0) for name in
                               (d.name for d in deployments)})
    _concentration(out, dispatcher, telemetry.config.model_groups)
    if telemetry.state is not None:
        status = telemetry.state.status()
        _gauge(out, "skyrelay_state_shared", "1 while limits and budgets are shared through the state backend; 0 "
               "while Redis is unreachable and this replica enforces its own share.", ("backend",),
               {(status.get("backend", "memory"),): int(bool(status.get("shared", True)))})
    for source in telemetry.gauge_sources:  # families other parts of the gateway (the ledger) publish
        for name, help_text, kind, labels, values in source():
            _family(out, name, help_text, kind, labels, values)
    out.append("")
    return "\n".join(out).encode()


def _routing_state(out: list[str], dispatcher: Any, deployments: list[Any]) -> None:
    now = dispatcher.clock()
    health = dispatcher.health
    health_records = health.snapshot()
    quotas = dispatcher.quotas.snapshot(now)
    names = [d.name for d in deployments]
    states, cooling, open_s, failures, outstanding = {}, {}, {}, {}, {}
    for name in names:
        state = health.state(name, now)
        for candidate in BREAKER_STATES:
            states[(name, candidate)] = int(state == candidate)
        reason = health.unavailable_reason(name, now)
        cooling[(name,)] = int(reason == COOLING_DOWN)
        open_s[(name,)] = health.seconds_until_available(name, now) if reason in (
            COOLING_DOWN, CIRCUIT_OPEN, PROBE_IN_FLIGHT) else 0.0
        failures[(name,)] = health_records.get(name, {}).get("failures", 0)
        outstanding[(name,)] = dispatcher.outstanding.get(name, 0)
    _gauge(out, "skyrelay_deployment_breaker_state", "1 for the breaker's current state, 0 for the others.",
           ("deployment", "state"), states)
    _gauge(out, "skyrelay_deployment_cooling_down", "1 while the deployment cools down (throttled or Retry-After).",
           ("deployment",), cooling)
    _gauge(out, "skyrelay_deployment_unavailable_seconds", "Seconds until the deployment may take a request again.",
           ("deployment",), open_s)
    _gauge(out, "skyrelay_deployment_consecutive_failures", "Failures in a row counted towards its breaker.",
           ("deployment",), failures)
    _gauge(out, "skyrelay_deployment_in_flight", "Requests in flight at the deployment.", ("deployment",),
           outstanding)
    limits, used = {}, {}
    for d in deployments:
        window = quotas.get(d.name, {})
        for kind, limit, count in (("requests", d.rpm, window.get("requests", 0)),
                                   ("tokens", d.tpm, window.get("tokens", 0))):
            if limit is not None:
                limits[(d.name, kind)] = limit
                used[(d.name, kind)] = count
        if d.max_concurrency is not None:
            limits[(d.name, "concurrency")] = d.max_concurrency
            used[(d.name, "concurrency")] = dispatcher.outstanding.get(d.name, 0)
    _gauge(out, "skyrelay_deployment_quota_limit",
           "Configured limits: requests and tokens per sliding minute (rpm, tpm), concurrency.",
           ("deployment", "quota"), limits)
    _gauge(out, "skyrelay_deployment_quota_used", "What the limit counts now (the last minute, or in flight).",
           ("deployment", "quota"), used)
    headroom: dict[tuple, float] = {}
    for (name, _), limit in limits.items():
        left = max(0.0, 1 - used[(name, _)] / limit) if limit else 0.0
        headroom[(name,)] = min(headroom.get((name,), 1.0), left)
    _gauge(out, "skyrelay_deployment_quota_headroom",
           "The share of its tightest configured limit still free now (1: all, 0: none).", ("deployment",), headroom)


def _concentration(out: list[str], dispatcher: Any, groups: dict) -> None:
    """Each vendor's share of a capped group's window against the cap, and the cap's edge (served or refused)."""
    now = dispatcher.clock()
    shares, caps, breaches, refusals = {}, {}, {}, {}
    book = dispatcher.shares
    for name, group in groups.items():
        policy = group.concentration
        if policy is None:
            continue
        caps[(name,)] = policy.max_share
        amounts = book.amounts(name, policy, now)
        total = sum(amounts.values())
        for vendor in sorted({d.vendor for d in group.deployments} | set(amounts)):
            shares[(name, vendor)] = amounts.get(vendor, 0) / total if total else 0.0
        breaches[(name,)] = book.breaches.get(name, 0)
        refusals[(name,)] = book.refusals.get(name, 0)
    if not caps:
        return
    _gauge(out, "skyrelay_vendor_share", "The vendor's share of the model group's concentration window (requests "
           "or estimated cost, as the cap measures).", ("model_group", "vendor"), shares)
    _gauge(out, "skyrelay_vendor_share_cap", "The model group's concentration cap (max_share).", ("model_group",),
           caps)
    _counter(out, "skyrelay_concentration_breaches_total", "Attempts served by a vendor over its cap because no "
             "other could serve (on_breach: serve).", ("model_group",), breaches)
    _counter(out, "skyrelay_concentration_refusals_total", "Requests refused for the cap (on_breach: refuse).",
             ("model_group",), refusals)


def _counter(out: list[str], name: str, help_text: str, labels: tuple[str, ...], values: dict) -> None:
    _family(out, name, help_text, "counter", labels, values)


def _gauge(out: list[str], name: str, help_text: str, labels: tuple[str, ...], values: dict) -> None:
    _family(out, name, help_text, "gauge", labels, values)


def _family(out: list[str], name: str, help_text: str, kind: str, labels: tuple[str, ...], values: dict) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for key, value in sorted(values.items()):
        key = key if isinstance(key, tuple) else (key,)
        out.append(f"{name}{{{_labels(labels, key)}}} {number(value)}" if labels else f"{name} {number(value)}")


def _histograms(out: list[str], name: str, help_text: str, labels: tuple[str, ...],
                hists: dict[tuple, Histogram]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for key, hist in sorted(hists.items(), key=lambda item: item[0]):
        own = _labels(labels, key)
        total = 0
        for bound, count in zip((*hist.bounds, float("inf")), hist.counts):
            total += count
            out.append(f'{name}_bucket{{{own},le="{number(bound)}"}} {total}')
        out.append(f"{name}_sum{{{own}}} {number(hist.sum)}")
        out.append(f"{name}_count{{{own}}} {total}")


def _labels(names: Iterable[str], values: Iterable[Any]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values))


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value as Prometheus text writes it: integers without a point, +Inf, NaN."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or value == int(value):
        return str(int(value))
    return repr(float(value))
