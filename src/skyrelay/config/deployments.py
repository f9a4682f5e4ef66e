"""One deployment entry: its endpoint, credentials, limits, prices, headers and kind-specific options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import fields, kinds
from .fields import Context, child
from .health import read_health_check
from .model import DEFAULT_MAX_CONNECTIONS, Deployment, Price, Timeouts

KEYS = ("name", "kind", "base_url", "api_key", "model", "region", "vendor", "geo", "context_window", "weight", "timeouts", "rpm", "tpm",
        "max_concurrency", "tier", "price", "headers", "tags", "max_connections", "health_check", *kinds.OPTIONS)
TIMEOUT_KEYS = ("connect", "first_byte", "total")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok", "discount")

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an HTTP token
_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_NAME_CHARS = re.compile(r"[^\s\x00-\x1f\x7f]+\Z")


def read_deployment(ctx: Context, raw: Mapping, path: str, group: str, index: int) -> Deployment:
    fields.check_keys(ctx, raw, path, KEYS)
    name = fields.text(ctx, raw, path, "name") or f"{group}-{index}"
    if not _NAME_CHARS.match(name):
        ctx.add(child(path, "name"), "must not contain spaces or control characters", "e.g. azure-eastus")
    kind = fields.choice(ctx, raw, path, "kind", kinds.KINDS, required=True)
    region = fields.text(ctx, raw, path, "region")
    kinds.check_region(ctx, path, kind, region)
    return Deployment(
        name=name,
        group=group,
        kind=kind or "",
        base_url=_base_url(ctx, raw, path, kind),
        api_key=fields.secret(ctx, raw, path, "api_key"),
        model=fields.text(ctx, raw, path, "model", required=True,
                          hint="the upstream model id (for azure: the deployment name)") or "",
        region=region,
        vendor=_lower(fields.text(ctx, raw, path, "vendor")) or "",  # "": the kind's vendor
        geo=_lower(fields.text(ctx, raw, path, "geo")),
        context_window=fields.number(ctx, raw, path, "context_window", integer=True, above=0),
        weight=fields.number(ctx, raw, path, "weight", default=1.0, above=0),
        timeouts=_timeouts(ctx, raw, path),
        rpm=fields.number(ctx, raw, path, "rpm", integer=True, above=0),
        tpm=fields.number(ctx, raw, path, "tpm", integer=True, above=0),
        max_concurrency=fields.number(ctx, raw, path, "max_concurrency", integer=True, minimum=1),
        tier=fields.number(ctx, raw, path, "tier", integer=True, minimum=0, default=0),
        price=_price(ctx, raw, path),
        headers=read_headers(ctx, raw, path),
        tags=_tags(ctx, raw, path),
        max_connections=fields.number(ctx, raw, path, "max_connections", integer=True, minimum=1,
                                      default=DEFAULT_MAX_CONNECTIONS),
        health_check=read_health_check(ctx, raw, path),
        options=kinds.read_options(ctx, raw, path, kind, region),
    )


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value is not None else None


def _base_url(ctx: Context, raw: Mapping, path: str, kind: str | None) -> str | None:
    where = child(path, "base_url")
    hint = kinds.BASE_URL_HINTS.get(kind or "openai")
    present = raw.get("base_url") is not None
    value = fields.text(ctx, raw, path, "base_url")
    if not present and kind is not None and kind not in kinds.DERIVED_ENDPOINT:
        ctx.add(where, f"required for kind {kind}", hint)
    if value is None:
        return None
    problem = _url_problem(value)
    if problem == "credentials":
        ctx.add(where, "must not contain credentials", "put the key in api_key (a secret), not in the URL")
        return None
    if problem:
        shown = ctx.show(where, value)
        ctx.add(where, f"not a URL: {shown} ({problem})", hint)
        return None
    return value.rstrip("/")


def _url_problem(value: str) -> str | None:
    """Why `value` is not an http(s) URL a client can connect to, or None. Credentials are looked for first, as
    an '@' before any query: the other problems' messages quote the URL."""
    if "@" in value.partition("?")[0].partition("#")[0]:
        return "credentials"
    if any(c.isspace() for c in value):
        return "contains spaces"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "malformed host or port"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if parts.username is not None or parts.password is not None:
        return "credentials"
    if not parts.hostname:
        return "no host"
    if parts.query or parts.fragment:
        return "no query string or fragment allowed"
    return None


def _timeouts(ctx: Context, raw: Mapping, path: str) -> Timeouts:
    where = child(path, "timeouts")
    section = fields.section(ctx, raw.get("timeouts"), where)
    if section is None:
        return Timeouts()
    fields.check_keys(ctx, section, where, TIMEOUT_KEYS)
    default = Timeouts()
    values = {key: fields.number(ctx, section, where, key, default=getattr(default, key), above=0)
              for key in TIMEOUT_KEYS}
    for key in ("connect", "first_byte"):
        if values[key] > values["total"]:
            ctx.add(child(where, key), f"is longer than total ({values[key]:g} > {values['total']:g})",
                    "raise total or lower this timeout")
    return Timeouts(**values)


def _price(ctx: Context, raw: Mapping, path: str) -> Price:
    where = child(path, "price")
    section = fields.section(ctx, raw.get("price"), where)
    if section is None:
        return Price()
    fields.check_keys(ctx, section, where, PRICE_KEYS)
    return Price(
        input_per_mtok=fields.number(ctx, section, where, "input_per_mtok", default=0.0, minimum=0),
        output_per_mtok=fields.number(ctx, section, where, "output_per_mtok", default=0.0, minimum=0),
        cached_input_per_mtok=fields.number(ctx, section, where, "cached_input_per_mtok", minimum=0),
        cache_write_per_mtok=fields.number(ctx, section, where, "cache_write_per_mtok", minimum=0),
        discount=fields.number(ctx, section, where, "discount", default=0.0, minimum=0, maximum=1),
    )


def read_headers(ctx: Context, raw: Mapping, path: str) -> dict[str, str]:
    """Extra upstream headers (also the OTLP exporter's). Values may carry tokens, so messages never show them."""
    where = child(path, "headers")
    section = fields.section(ctx, raw.get("headers"), where)
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in (section or {}).items():
        entry = child(where, name)
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            ctx.add(entry, "not a valid header name", "letters, digits and -, e.g. X-Team")
            continue
        if name.lower() in _MANAGED_HEADERS:
            ctx.add(entry, "is set by the gateway itself", "remove it")
            continue
        if name.lower() in seen:
            ctx.add(entry, "repeats a header name (names are case-insensitive)")
            continue
        seen.add(name.lower())
        value, ok = ctx.resolve(entry, value, secret=True)
        if not ok:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            ctx.add(entry, f"expected a string, got {fields.type_name(value)}")
            continue
        value = str(value)
        if "\r" in value or "\n" in value:
            ctx.add(entry, "must not contain line breaks")
            continue
        headers[name] = value
    return headers


def _tags(ctx: Context, raw: Mapping, path: str) -> dict:
    where = child(path, "tags")
    section = fields.section(ctx, raw.get("tags"), where)
    tags = {}
    for key, value in (section or {}).items():
        entry = child(where, key)
        if not isinstance(key, str):
            ctx.add(entry, f"keys must be strings, got {fields.type_name(key)}", "quote the key")
            continue
        value, ok = ctx.resolve(entry, value)
        if not ok:
            continue
        if value is not None and not isinstance(value, (str, int, float, bool)):
            ctx.add(entry, f"expected a string, number or boolean, got {fields.type_name(value)}")
            continue
        tags[key] = value
    return tags
