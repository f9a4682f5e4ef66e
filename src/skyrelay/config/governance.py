"""The `state:`, `teams:` and `keys:` sections: where counters live, and who may call, what, how fast, for how much.

Keys are kept only as their sha256 digest from here on: the secret itself never reaches the typed Config.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

from . import fields
from .fields import Context, child, item
from .model import ApiKey, Budget, StateConfig, Team
from .policies import read_residency

STATE_KEYS = ("backend", "url", "prefix")
BACKENDS = ("memory", "redis")
PERIODS = ("day", "week", "month", "total")
ROLES = ("user", "admin")
LIMIT_KEYS = ("models", "residency", "rpm", "tpm", "max_parallel", "budget", "metadata")
TEAM_KEYS = LIMIT_KEYS
KEY_KEYS = ("name", "team", "key", *LIMIT_KEYS, "expires_at", "role")
BUDGET_KEYS = ("usd", "period")
DEFAULT_REDIS_PREFIX = "skyrelay:"


def key_digest(key: str) -> str:
    """How a key is stored and looked up: its sha256, hex (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()


def read_state(ctx: Context, value: Any) -> StateConfig:
    raw = fields.section(ctx, value, "state")
    if raw is None:
        return StateConfig()
    fields.check_keys(ctx, raw, "state", STATE_KEYS)
    backend = fields.choice(ctx, raw, "state", "backend", BACKENDS, default="memory")
    url = fields.text(ctx, raw, "state", "url", secret=True)  # a Redis URL may carry a password
    if backend == "redis":
        if url is None:
            ctx.add("state.url", "required with backend: redis", 'e.g. "redis://127.0.0.1:6379/0"')
        elif not url.startswith(("redis://", "rediss://", "unix://")):
            ctx.add("state.url", "expected a redis://, rediss:// or unix:// URL")
        elif not url.startswith("unix://") and (problem := fields.credentials_url_problem(url)) is not None:
            ctx.add("state.url", problem)
    elif url is not None:
        ctx.add("state.url", "only used with backend: redis", "remove it, or set backend: redis")
    prefix = fields.text(ctx, raw, "state", "prefix", default=DEFAULT_REDIS_PREFIX)
    return StateConfig(backend=backend, url=url, prefix=prefix)


def read_teams(ctx: Context, value: Any, groups: list[str]) -> dict[str, Team]:
    raw = fields.section(ctx, value, "teams")
    teams: dict[str, Team] = {}
    for name, body in (raw or {}).items():
        path = child("teams", name)
        if not isinstance(name, str) or not name.strip():
            ctx.add(path, "a team name must be a non-empty string")
            continue
        section = fields.section(ctx, body, path) or {}
        fields.check_keys(ctx, section, path, TEAM_KEYS)
        teams[name] = Team(name=name, **read_limits(ctx, section, path, groups))
    return teams


def read_keys(ctx: Context, value: Any, groups: list[str], teams: dict[str, Team],
              master_key: Any) -> dict[str, ApiKey]:
    """The declared keys, by digest."""
    if value is None:
        return {}
    if not isinstance(value, list):
        ctx.add("keys", f"expected a list of keys, got {fields.type_name(value)}",
                "start each key with '- ' (a YAML list item)")
        return {}
    keys: dict[str, ApiKey] = {}
    names: dict[str, str] = {}
    for index, raw in enumerate(value):
        path = item("keys", index)
        if not isinstance(raw, Mapping):
            ctx.add(path, f"expected a mapping (name:, key:, ...), got {fields.type_name(raw)}")
            continue
        fields.check_keys(ctx, raw, path, KEY_KEYS)
        name = fields.text(ctx, raw, path, "name", required=True)
        secret = fields.secret(ctx, raw, path, "key")
        if secret is None and raw.get("key") is None:
            ctx.add(child(path, "key"), "required, but missing", 'e.g. key: "${CI_BOT_KEY}"')
        team = fields.text(ctx, raw, path, "team")
        if team is not None and team not in teams:
            ctx.add(child(path, "team"), f"unknown team {ctx.show(child(path, 'team'), team)}",
                    fields.did_you_mean(team, teams) or (f"teams: {', '.join(teams)}" if teams
                                                         else "declare it under teams:"))
        if name is not None and name in names:
            ctx.add(child(path, "name"), f"key name {name!r} is already used by {names[name]}")
        elif name is not None:
            names[name] = path
        if secret is None or name is None:
            continue
        if master_key is not None and master_key.matches(secret.reveal()):
            ctx.add(child(path, "key"), "is the master key", "give each key a secret of its own")
            continue
        digest = key_digest(secret.reveal())
        if digest in keys:
            ctx.add(child(path, "key"), f"is the same secret as key {keys[digest].name!r}",
                    "give each key a secret of its own")
            continue
        keys[digest] = ApiKey(name=name, team=team, digest=digest,
                              expires_at=read_expires_at(ctx, raw, path),
                              role=fields.choice(ctx, raw, path, "role", ROLES, default="user"),
                              **read_limits(ctx, raw, path, groups))
    return keys


MAX_BUDGET_USD = 10**12
EXPIRY_YEARS = (1970, 9998)  # an expiry's year, first and last: stored and read back as ISO 8601 text


def read_limits(ctx: Context, raw: Mapping, path: str, groups: list[str]) -> dict:
    """What keys and teams share: models, residency, rate limits, a budget, metadata."""
    models = None
    if raw.get("models") is not None:
        models = frozenset(_names(ctx, raw, path, "models", groups))
    residency = read_residency(ctx, raw, path)  # lower case, as a group's: the fences compare lower-case labels
    metadata = fields.section(ctx, raw.get("metadata"), child(path, "metadata"))
    return {
        "models": models,
        "residency": residency,
        "rpm": fields.number(ctx, raw, path, "rpm", integer=True, above=0),
        "tpm": fields.number(ctx, raw, path, "tpm", integer=True, above=0),
        "max_parallel": fields.number(ctx, raw, path, "max_parallel", integer=True, minimum=1),
        "budget": _budget(ctx, raw, path),
        "metadata": dict(metadata or {}),
    }


def _names(ctx: Context, raw: Mapping, path: str, key: str, groups: list[str]) -> list[str]:
    found = []
    for entry_path, name in fields.string_list(ctx, raw, path, key):
        if name not in groups:
            ctx.add(entry_path, f"unknown model group {ctx.show(entry_path, name)}",
                    fields.did_you_mean(name, groups) or f"model groups: {', '.join(groups)}")
        found.append(name)
    return found


def _budget(ctx: Context, raw: Mapping, path: str) -> Budget | None:
    where = child(path, "budget")
    section = fields.section(ctx, raw.get("budget"), where)
    if section is None:
        return None
    fields.check_keys(ctx, section, where, BUDGET_KEYS)
    # At most a trillion dollars: counted in micro-dollars, a budget must stay a finite integer (1e308 did not).
    usd = fields.number(ctx, section, where, "usd", minimum=0, maximum=MAX_BUDGET_USD, required=True)
    period = fields.choice(ctx, section, where, "period", PERIODS, required=True)
    if usd is None or period is None:
        return None
    return Budget(usd=usd, period=period)


def read_expires_at(ctx: Context, raw: Mapping, path: str) -> float | None:
    """Epoch seconds. YAML reads an unquoted timestamp as a date or datetime; a string must be ISO 8601."""
    where = child(path, "expires_at")
    value = raw.get("expires_at")
    if value is None:
        return None
    value, ok = ctx.resolve(where, value)
    if not ok:
        return None
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            ctx.add(where, f"expected an ISO 8601 time, got {ctx.show(where, value)}", 'e.g. "2027-01-31T00:00:00Z"')
            return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)  # no zone written: UTC, as YAML's timestamps
        first, last = EXPIRY_YEARS  # (the admin API's records: a year below 1000 did not read back)
        if not first <= value.year <= last:
            ctx.add(where, f"must be between {first} and {last}, got the year {value.year}")
            return None
        return value.timestamp()
    ctx.add(where, f"expected an ISO 8601 time, got {ctx.show(where, value)}", 'e.g. "2027-01-31T00:00:00Z"')
    return None
