"""The `database:` and `commitments:` sections: where the ledger (and admin-made keys) live, and the contracts that
turn usage into money. Commitments are read here once, for the ledger, the reports and the simulator alike."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from ..db import DEFAULT_URL, parse_url
from . import fields
from .fields import Context, child, item
from .model import Commitment, DatabaseConfig

DATABASE_KEYS = ("url", "responses_retention_days")
COMMITMENT_KEYS = ("name", "kind", "vendor", "deployments", "cost_per_hour", "amount_usd", "discount", "start", "end")
COMMITMENT_KINDS = ("reserved", "spend")


def read_database(ctx: Context, value: Any) -> DatabaseConfig:
    raw = fields.section(ctx, value, "database")
    if raw is None:
        return DatabaseConfig()
    fields.check_keys(ctx, raw, "database", DATABASE_KEYS)
    url = fields.text(ctx, raw, "database", "url", default=DEFAULT_URL, secret=True)  # may carry a password
    database = parse_url(url)
    if database is None:
        ctx.add("database.url", "expected sqlite:///path or postgresql://user@host/db",
                'e.g. "sqlite:///./.skyrelay/skyrelay.db"')
        return DatabaseConfig()
    if database.dialect == "postgresql" and (problem := fields.credentials_url_problem(url)) is not None:
        ctx.add("database.url", problem)
        return DatabaseConfig()
    retention = fields.number(ctx, raw, "database", "responses_retention_days", default=30.0, above=0,
                              maximum=36500)
    return DatabaseConfig(url=url, responses_retention_days=retention)


def read_commitments(ctx: Context, value: Any, deployments: dict[str, str]) -> tuple[Commitment, ...]:
    """`deployments` maps every configured deployment name to its vendor, to check the references."""
    if value is None:
        return ()
    if not isinstance(value, list):
        ctx.add("commitments", f"expected a list of commitments, got {fields.type_name(value)}")
        return ()
    found: list[Commitment] = []
    names: set[str] = set()
    for index, body in enumerate(value):
        path = item("commitments", index)
        raw = fields.section(ctx, body, path, required=True)
        if raw is None:
            continue
        commitment = _commitment(ctx, raw, path, deployments)
        if commitment is None:
            continue
        if commitment.name in names:
            ctx.add(child(path, "name"), f"repeats the commitment name {commitment.name!r}")
            continue
        names.add(commitment.name)
        found.append(commitment)
    return tuple(found)


def _commitment(ctx: Context, raw: Mapping, path: str, deployments: dict[str, str]) -> Commitment | None:
    before = len(ctx.problems)
    fields.check_keys(ctx, raw, path, COMMITMENT_KEYS)
    name = fields.text(ctx, raw, path, "name", required=True)
    kind = fields.choice(ctx, raw, path, "kind", COMMITMENT_KINDS, required=True)
    vendor = fields.text(ctx, raw, path, "vendor", required=True)
    listed = _deployment_list(ctx, raw, path, deployments, vendor)
    cost_per_hour = fields.number(ctx, raw, path, "cost_per_hour", minimum=0)
    amount_usd = fields.number(ctx, raw, path, "amount_usd", minimum=0)
    discount = fields.number(ctx, raw, path, "discount", minimum=0, maximum=1, default=0.0)
    start = _date(ctx, raw, path, "start")
    end = _date(ctx, raw, path, "end")
    if kind == "reserved":
        if cost_per_hour is None:
            ctx.add(child(path, "cost_per_hour"), "required for a reserved commitment", "e.g. cost_per_hour: 180")
        if not listed:
            ctx.add(child(path, "deployments"), "required for a reserved commitment",
                    "list the deployments the reserved capacity serves")
        if amount_usd is not None:
            ctx.add(child(path, "amount_usd"), "only used by kind: spend", "remove it")
        if raw.get("discount") is not None:  # its usage bills nothing: there is nothing to discount
            ctx.add(child(path, "discount"), "only used by kind: spend", "remove it; reserved capacity costs "
                    "cost_per_hour")
    elif kind == "spend":
        if amount_usd is None:
            ctx.add(child(path, "amount_usd"), "required for a spend commitment", "e.g. amount_usd: 2500000")
        if cost_per_hour is not None:
            ctx.add(child(path, "cost_per_hour"), "only used by kind: reserved", "remove it")
    if start is not None and end is not None and end <= start:
        ctx.add(child(path, "end"), "must be after start")
    if len(ctx.problems) > before:
        return None
    if not listed:  # a spend commitment without a list draws on every deployment of its vendor
        listed = tuple(name for name, owner in deployments.items() if owner == vendor)
    return Commitment(name=name, kind=kind, vendor=vendor, deployments=listed, cost_per_hour=cost_per_hour or 0.0,
                      amount_usd=amount_usd or 0.0, discount=discount, start=start, end=end)


def _deployment_list(ctx: Context, raw: Mapping, path: str, deployments: dict[str, str],
                     vendor: str | None) -> tuple[str, ...]:
    where = child(path, "deployments")
    value = raw.get("deployments")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        ctx.add(where, "expected a list of deployment names")
        return ()
    for index, name in enumerate(value):
        if name not in deployments:
            ctx.add(item(where, index), f"no deployment is named {name!r}")
        elif vendor is not None and deployments[name] != vendor:
            ctx.add(item(where, index), f"deployment {name!r} is paid to {deployments[name]!r}, not {vendor!r}")
    return tuple(value)


def _date(ctx: Context, raw: Mapping, path: str, key: str) -> datetime.date | None:
    where = child(path, key)
    value = raw.get(key)
    if value is None:
        ctx.add(where, "required, but missing", "a date, e.g. 2026-01-01")
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    ctx.add(where, f"expected a date (YYYY-MM-DD), got {ctx.show(where, value)}")
    return None
