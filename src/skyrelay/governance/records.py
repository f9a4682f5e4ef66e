"""The admin API's key and team bodies: validated by the configuration's own readers (one set of rules for a key
declared in YAML and one made through the API), stored as a normalised JSON `spec`, shown as JSON views.

A bad body is a 400 naming its first wrong field (`param`, the field's path: `budget.usd`), with every problem
in the message.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from .. import errors
from ..config import fields
from ..config.governance import KEY_KEYS, ROLES, TEAM_KEYS, read_expires_at, read_limits
from ..config.model import ApiKey, Budget, Team

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
KEY_FIELDS = tuple(k for k in KEY_KEYS if k not in ("name", "key"))  # the secret is made here, never sent
TEAM_FIELDS = TEAM_KEYS
CONFIG_ID = "config:"  # the id of a key or team declared in the configuration file: read-only through the API


def validate(body: Any, fields_allowed: tuple[str, ...], groups: list[str], *, create: bool) -> dict:
    """The normalised spec of a key or team body (a PATCH's fields only, with null for 'remove'); raises a 400."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest(f"the body must be a JSON object, got {fields.type_name(body)}")
    ctx = fields.Context(env={})
    fields.check_keys(ctx, body, "", fields_allowed)
    if not create and "name" in body:
        ctx.add("name", "cannot be changed (limits and budgets are counted under it); create a new one instead")
    if create:
        name = fields.text(ctx, body, "", "name", required=True)
        if name is not None and not NAME.match(name):
            ctx.add("name", f"{name[:80]!r} is not a usable name",
                    "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    limits = read_limits(ctx, body, "", groups)
    expires_at = read_expires_at(ctx, body, "") if "expires_at" in fields_allowed else None
    role = fields.choice(ctx, body, "", "role", ROLES, default="user") if "role" in fields_allowed else None
    team = fields.text(ctx, body, "", "team") if "team" in fields_allowed else None
    if body.get("metadata") is not None and isinstance(body["metadata"], dict):
        if any(not isinstance(k, str) for k in body["metadata"]):
            ctx.add("metadata", "keys must be strings")
    if ctx.problems:
        raise invalid(ctx.problems)
    spec = {"models": _listed(limits["models"]), "residency": _listed(limits["residency"]),
            "rpm": limits["rpm"], "tpm": limits["tpm"], "max_parallel": limits["max_parallel"],
            "budget": _budget(limits["budget"]), "metadata": limits["metadata"]}
    if "team" in fields_allowed:
        spec.update(team=team, expires_at=_iso(expires_at), role=role)
    if create:
        spec["name"] = body["name"]
        return spec
    return {name: spec[name] for name in body if name in spec}  # a PATCH changes only what it names


def invalid(problems: list) -> errors.InvalidRequest:
    """Every problem in the message (worded for a JSON body: fields, not YAML keys); the first one's path as param."""
    parts = []
    for p in problems:
        text = f"{p.path}: {p.message}" + (f" ({p.hint})" if p.hint else "")
        parts.append(text.replace("unknown key", "unknown field").replace("known keys", "known fields"))
    return errors.InvalidRequest(f"invalid request: {'; '.join(parts)}", param=problems[0].path or None,
                                 code="invalid_value")


def _listed(names: frozenset | None) -> list[str] | None:
    return sorted(names) if names is not None else None


def _budget(budget: Budget | None) -> dict | None:
    return {"usd": budget.usd, "period": budget.period} if budget is not None else None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str | None) -> float | None:
    if iso is None:
        return None
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- specs to the typed records governance enforces ------------------------------------------------------------


def team_record(name: str, spec: dict) -> Team:
    return Team(name=name, **_limits(spec))


def key_record(name: str, digest: str, spec: dict) -> ApiKey:
    return ApiKey(name=name, digest=digest, team=spec.get("team"), expires_at=_epoch(spec.get("expires_at")),
                  role=spec.get("role") or "user", **_limits(spec))


def _limits(spec: dict) -> dict:
    budget = spec.get("budget")
    models, residency = spec.get("models"), spec.get("residency")
    return {"models": frozenset(models) if models is not None else None,
            # lower case: a record stored before the admin API lower-cased them still matches its places
            "residency": frozenset(label.lower() for label in residency) if residency is not None else None,
            "rpm": spec.get("rpm"), "tpm": spec.get("tpm"), "max_parallel": spec.get("max_parallel"),
            "budget": Budget(usd=budget["usd"], period=budget["period"]) if budget else None,
            "metadata": dict(spec.get("metadata") or {})}


# --- views -----------------------------------------------------------------------------------------------------


def key_view(row: dict) -> dict:
    spec = row["spec"]
    return {"id": row["id"], "object": "api_key", "name": row["name"], "team": spec.get("team"),
            "models": spec.get("models"), "residency": spec.get("residency"), "rpm": spec.get("rpm"),
            "tpm": spec.get("tpm"), "max_parallel": spec.get("max_parallel"), "budget": spec.get("budget"),
            "expires_at": spec.get("expires_at"), "metadata": spec.get("metadata") or {},
            "role": spec.get("role") or "user", "source": row.get("source", "api"),
            "created_at": _iso(row.get("created_at")), "revoked_at": _iso(row.get("revoked_at"))}


def team_view(row: dict) -> dict:
    spec = row["spec"]
    return {"id": row["id"], "object": "team", "name": row["name"], "models": spec.get("models"),
            "residency": spec.get("residency"), "rpm": spec.get("rpm"), "tpm": spec.get("tpm"),
            "max_parallel": spec.get("max_parallel"), "budget": spec.get("budget"),
            "metadata": spec.get("metadata") or {}, "source": row.get("source", "api"),
            "created_at": _iso(row.get("created_at"))}


def declared_key_row(key: ApiKey) -> dict:
    """A key from the configuration file, shaped as a stored row (its id says where it comes from)."""
    spec = {"team": key.team, "models": _listed(key.models), "residency": _listed(key.residency), "rpm": key.rpm,
            "tpm": key.tpm, "max_parallel": key.max_parallel, "budget": _budget(key.budget),
            "expires_at": _iso(key.expires_at), "metadata": key.metadata, "role": key.role}
    return {"id": CONFIG_ID + key.name, "name": key.name, "spec": spec, "source": "config"}


def declared_team_row(team: Team) -> dict:
    spec = {"models": _listed(team.models), "residency": _listed(team.residency), "rpm": team.rpm, "tpm": team.tpm,
            "max_parallel": team.max_parallel, "budget": _budget(team.budget), "metadata": team.metadata}
    return {"id": CONFIG_ID + team.name, "name": team.name, "spec": spec, "source": "config"}
