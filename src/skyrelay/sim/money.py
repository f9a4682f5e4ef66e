"""A run's money: each deployment's list and billed cost per interval (ledger.money.record_costs, at the price in
force then), reserved capacity paid by the hour, spend commitments drawn down and projected over their term, and
what the spillover cost beyond the capacity the group fills first."""

from __future__ import annotations

import datetime

import numpy as np

from ..ledger.money import record_costs
from ..pricing import billed_micro_usd, list_cost_micro_usd
from .scenario import Scenario
from .tally import Tally
from .world import World, timeline


class _Usage:
    __slots__ = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens")

    def __init__(self, input_tokens, output_tokens, cached_tokens):
        self.input_tokens, self.output_tokens, self.cached_tokens = input_tokens, output_tokens, cached_tokens
        self.cache_write_tokens = 0


def deployments_at(scenario: Scenario, tally: Tally) -> list[dict]:
    """Per interval, the deployment objects (with the price then in force) by name."""
    world = World(scenario)
    changes = timeline(scenario)
    out = []
    for b in range(tally.buckets):
        middle = (b + 0.5) * tally.interval_s
        while changes and changes[0][0] <= middle:
            changes.pop(0)[1](world)
        out.append({d.name: d for g in world.groups.values() for d in g.deployments})
    return out


def reserved_deployments(scenario: Scenario) -> set[str]:
    return {name for c in scenario.config.commitments if c.kind == "reserved" for name in c.deployments}


def costs(scenario: Scenario, tally: Tally) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(list, billed, spilled extra) USD per deployment and interval. Usage of reserved capacity bills nothing (its
    hours are paid whatever it serves); spend commitments bill at their discount off list."""
    reserved = reserved_deployments(scenario)
    spend_discount = {name: c.discount for c in scenario.config.commitments if c.kind == "spend"
                      for name in c.deployments}
    at = deployments_at(scenario, tally)
    first_price = _first_tier_prices(scenario, reserved)
    shape = tally.served.shape
    listed, billed, extra = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for k, name in enumerate(tally.deployments):
        for b in range(tally.buckets):
            d = at[b][name]
            when = scenario.start + datetime.timedelta(seconds=b * tally.interval_s)
            usage = _Usage(tally.input_tokens[k, b], tally.output_tokens[k, b], tally.cached_tokens[k, b])
            list_usd, billed_usd, _, _ = record_costs(d, usage, when, scenario.config.commitments)
            if name in reserved:
                billed_usd = 0.0
            elif name in spend_discount:
                billed_usd = list_usd * (1 - spend_discount[name])
            listed[k, b], billed[k, b] = list_usd, billed_usd
            spilled_in, spilled_out = tally.spilled_input[k, b], tally.spilled_output[k, b]
            if spilled_in or spilled_out:
                ratio = billed_usd / list_usd if list_usd else 1.0
                here = list_cost_micro_usd(d.price, spilled_in, spilled_out) * ratio / 1e6
                baseline = first_price.get(d.group)
                there = 0.0 if baseline is None else billed_micro_usd(
                    baseline, list_cost_micro_usd(baseline, spilled_in, spilled_out)) / 1e6
                extra[k, b] = max(here - there, 0.0)
    return listed, billed, extra


def _first_tier_prices(scenario: Scenario, reserved: set[str]) -> dict:
    """Per group, the price its first tier would have charged (None: reserved capacity, nothing per token)."""
    out = {}
    for name, group in scenario.config.model_groups.items():
        first = group.tiers[0] if group.tiers else group.deployments
        if any(d.name in reserved for d in first):
            out[name] = None
        else:
            out[name] = min((d.price for d in first), key=lambda p: p.input_per_mtok + p.output_per_mtok)
    return out


def commitments(scenario: Scenario, tally: Tally, listed: np.ndarray) -> list[dict]:
    """Each commitment's burn over the run, and projected over its term from the run's rate."""
    index = {name: k for k, name in enumerate(tally.deployments)}
    run_days = scenario.duration_s / 86400
    out = []
    for c in scenario.config.commitments:
        rows = [index[n] for n in c.deployments if n in index]
        term_days = (c.end - c.start).days
        value = listed[rows].sum(axis=0) if rows else np.zeros(tally.buckets)
        entry = {"name": c.name, "kind": c.kind, "vendor": c.vendor, "deployments": list(c.deployments),
                 "term": [c.start.isoformat(), c.end.isoformat()], "term_days": term_days}
        if c.kind == "reserved":
            paid = c.cost_per_hour * scenario.duration_s / 3600
            busy = tally.busy_s[rows].sum() if rows else 0.0
            slots = sum(scenario.clouds[n].capacity.concurrency or 0 for n in c.deployments)
            utilisation = busy / (slots * scenario.duration_s) if slots else None
            entry.update(paid_usd=paid, list_value_usd=float(value.sum()),
                         value_per_paid=float(value.sum() / paid) if paid else None,
                         slot_utilisation=utilisation,
                         cumulative_paid_usd=(np.arange(1, tally.buckets + 1) * c.cost_per_hour
                                              * tally.interval_s / 3600).tolist(),
                         cumulative_value_usd=np.cumsum(value).tolist())
            entry["verdict"] = ("under-burns: serves less than it costs at list price"
                                if value.sum() < paid else "earns its price")
        else:
            drawn = value * (1 - c.discount)
            total = float(drawn.sum())
            per_day = total / run_days if run_days else 0.0
            projected = per_day * term_days
            entry.update(amount_usd=c.amount_usd, drawn_usd=total, per_day_usd=per_day,
                         projected_usd=projected, cumulative_drawn_usd=np.cumsum(drawn).tolist())
            if projected > c.amount_usd:
                days = c.amount_usd / per_day if per_day else None
                entry["runs_out"] = (c.start + datetime.timedelta(days=days)).isoformat() if days else None
                entry["overrun_usd"] = projected - c.amount_usd
                entry["verdict"] = f"runs out early, on {entry['runs_out']}"
            else:
                entry["shortfall_usd"] = c.amount_usd - projected
                entry["verdict"] = "under-spends: the shortfall is still owed"
        out.append(entry)
    return out


def reserved_paid(scenario: Scenario) -> float:
    return sum(c.cost_per_hour * scenario.duration_s / 3600 for c in scenario.config.commitments
               if c.kind == "reserved")
