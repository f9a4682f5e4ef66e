"""Routing policies in the configuration: the gateway-wide `routing:` section, and a group's `concentration`,
`residency` and `hedge`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import fields
from .fields import Context, child
from .model import BREACH_POLICIES, CONCENTRATION_MEASURES, Concentration, Hedge, RoutingDefaults

ROUTING_KEYS = ("concentration",)
CONCENTRATION_KEYS = ("max_share", "window_s", "measure", "on_breach")
HEDGE_KEYS = ("after_ms", "after_percentile")


def read_routing(ctx: Context, value: Any) -> RoutingDefaults:
    raw = fields.section(ctx, value, "routing")
    if raw is None:
        return RoutingDefaults()
    fields.check_keys(ctx, raw, "routing", ROUTING_KEYS)
    return RoutingDefaults(concentration=read_concentration(ctx, raw, "routing"))


def read_concentration(ctx: Context, raw: Mapping, path: str) -> Concentration | None:
    where = child(path, "concentration")
    section = fields.section(ctx, raw.get("concentration"), where)
    if section is None:
        return None
    fields.check_keys(ctx, section, where, CONCENTRATION_KEYS)
    default = Concentration(max_share=1.0)
    return Concentration(
        max_share=fields.number(ctx, section, where, "max_share", above=0, maximum=1, required=True,
                                default=1.0),
        window_s=fields.number(ctx, section, where, "window_s", above=0, maximum=86400, default=default.window_s),
        measure=fields.choice(ctx, section, where, "measure", CONCENTRATION_MEASURES, default=default.measure),
        on_breach=fields.choice(ctx, section, where, "on_breach", BREACH_POLICIES, default=default.on_breach),
    )


def read_residency(ctx: Context, raw: Mapping, path: str) -> frozenset[str] | None:
    """The geos or regions a group, a team or a key may use, lower case; None when the key is absent (any place)."""
    if raw.get("residency") is None:
        return None
    labels = fields.string_list(ctx, raw, path, "residency")
    if not labels and isinstance(raw.get("residency"), list):
        ctx.add(child(path, "residency"), "is empty: no deployment could ever serve",
                "list the geos or regions allowed, e.g. [eu], or remove the key")
    return frozenset(label.strip().lower() for _, label in labels) or None


def read_hedge(ctx: Context, raw: Mapping, path: str, deployments, fallbacks) -> Hedge | None:
    """`hedge: {after_ms: N}` or `{after_percentile: P}`: exactly one. A hedge goes to another vendor: a group
    whose deployments are all of one vendor and that has no fallbacks is told it could never hedge."""
    where = child(path, "hedge")
    section = fields.section(ctx, raw.get("hedge"), where)
    if section is None:
        return None
    fields.check_keys(ctx, section, where, HEDGE_KEYS)
    given = [key for key in HEDGE_KEYS if section.get(key) is not None]
    if len(given) != 1:
        ctx.add(where, "needs exactly one of after_ms or after_percentile" + (", not both" if given else ""),
                "e.g. hedge: {after_ms: 1500}, or hedge: {after_percentile: 95}")
        return None
    vendors = {d.vendor for d in deployments}
    if len(vendors) == 1 and not fallbacks:
        ctx.add(where, f"every deployment is of vendor {next(iter(vendors))!r} and the group has no fallbacks: "
                "a hedge goes to another vendor, so it could never be sent",
                "add a deployment of another vendor (or a fallback group), or remove hedge")
    if given[0] == "after_ms":
        return Hedge(after_ms=fields.number(ctx, section, where, "after_ms", above=0, maximum=600_000))
    return Hedge(after_percentile=fields.number(ctx, section, where, "after_percentile", above=0, maximum=100))
