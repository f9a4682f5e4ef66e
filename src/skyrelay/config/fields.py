"""Typed readers for one mapping of the YAML tree. Each records problems instead of raising, so a single pass
reports every mistake; each returns the default (or None) when the value is unusable, so checks that depend on
it stay quiet instead of piling up consequences of one mistake.

Values that came from `${VAR}` are described in messages by their template, never by the variable's value,
and credentials are described by their type only: no message can leak a secret.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .envsubst import has_reference, substitute
from .model import Problem, Secret

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def child(path: str, key: object) -> str:
    """`server` + `port` -> `server.port`; keys that would read ambiguously are quoted."""
    text = str(key)
    part = text if _PLAIN_KEY.match(text) else repr(text)
    return f"{path}.{part}" if path else part


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def did_you_mean(word: object, candidates: Iterable[str]) -> str | None:
    by_lower = {c.lower(): c for c in candidates}
    word = str(word).lower()
    close = difflib.get_close_matches(word, list(by_lower), n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # a shortened key: `input` for `input_per_mtok`
        close = [c for c in by_lower if c.startswith(word)][:1]
    return f"did you mean {by_lower[close[0]]!r}?" if close else None


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date"
    return type(value).__name__


class Context:
    """Collects problems and remembers which values came from the environment."""

    __slots__ = ("env", "problems", "templates")

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[Problem] = []
        self.templates: dict[str, str] = {}  # path -> the string as written, before substitution

    def add(self, path: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(path, message, hint))

    def show(self, path: str, value: object, *, secret: bool = False) -> str:
        """How a value may appear in a message: never a secret, never an environment variable's value."""
        if path in self.templates:
            return f"{self.templates[path]!r} (from the environment)"
        if secret:
            return type_name(value)
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return repr(value if len(value) <= 80 else value[:77] + "...")
        if isinstance(value, (datetime.date, datetime.datetime)):
            return f"a date ({value.isoformat()})"
        return type_name(value)

    def resolve(self, path: str, value: Any, *, secret: bool = False) -> tuple[Any, bool]:
        """Substitute `${VAR}` in a string value; returns (value, ok)."""
        if not isinstance(value, str) or not has_reference(value):
            return value, True
        result = substitute(value, self.env)
        for bad in result.malformed:
            shown = "a reference" if secret else repr(bad)
            self.add(path, f"malformed environment reference {shown}",
                     "write ${NAME} with NAME made of letters, digits and _; write $${ for a literal ${")
        for name in result.missing:
            self.add(path, f"environment variable {name} is not set",
                     f"set {name} in the gateway's environment; write $${{ for a literal ${{")
        if result.malformed or result.missing:
            return None, False
        if result.text != value:
            self.templates[path] = value
        return result.text, True


def check_keys(ctx: Context, mapping: Mapping, path: str, known: Iterable[str], *,
               ignore_prefix: str | None = None) -> None:
    """Flag keys that are not strings or not known, suggesting the closest known key."""
    known = list(known)
    for key in mapping:
        if ignore_prefix and isinstance(key, str) and key.startswith(ignore_prefix):
            continue
        if not isinstance(key, str):
            ctx.add(child(path, key), f"keys must be strings, got {type_name(key)}", "quote the key")
        elif key not in known:
            ctx.add(child(path, key), "unknown key", did_you_mean(key, known) or f"known keys: {', '.join(known)}")


def section(ctx: Context, value: Any, path: str, *, required: bool = False) -> Mapping | None:
    """A nested mapping; null or absent means 'use the defaults' unless required. What stands in its place is
    named by its type only: a string there is often a value meant for a key below (`database: postgresql://...`,
    `headers: "Authorization: Bearer ..."`), a secret as often as not."""
    if value is None:
        if required:
            ctx.add(path, "required, but missing")
        return None
    if not isinstance(value, Mapping):
        ctx.add(path, f"expected a mapping, got {type_name(value)}", "write `key: value` lines indented below it")
        return None
    return value


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def credentials_url_problem(url: str) -> str | None:
    """Why a URL that may hold a password (database.url, state.url) would not be read as written, or None. The
    drivers split an unescaped '/', '?', '#' or '@' in a password differently, and their errors then quote part
    of it (a port, a host, an escape): refused here, in words that quote none of it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return ("its host or port cannot be read; a user or password holding '/', '?', '#', ':' or '@' must "
                "percent-encode it (%2F, %3F, %23, %3A, %40)")
    after_host = url[url.index(parts.netloc) + len(parts.netloc):] if parts.netloc else ""
    if "@" in parts.netloc.rpartition("@")[0] or "@" in after_host:
        return "an '@' in the user or password must be percent-encoded (%40); so must a '/', '?' or '#'"
    if _BAD_ESCAPE.search(parts.netloc):
        return "a '%' in the user or password must be percent-encoded (%25)"
    return None


def text(ctx: Context, mapping: Mapping, path: str, key: str, *, required: bool = False,
         default: str | None = None, secret: bool = False, hint: str | None = None) -> str | None:
    """A non-empty string (a YAML null counts as absent)."""
    where = child(path, key)
    value = mapping.get(key)
    if value is None:
        if required:
            ctx.add(where, "required, but missing", hint)
        return default
    value, ok = ctx.resolve(where, value, secret=secret)
    if not ok:
        return default
    if not isinstance(value, str):
        ctx.add(where, f"expected a string, got {ctx.show(where, value, secret=secret)}",
                None if secret else _quote_hint(value))
        return default
    if not value.strip():
        why = "set the variable or remove the key" if where in ctx.templates else "remove the key or give a value"
        ctx.add(where, "is empty", why)
        return default
    return value


def _quote_hint(value: object) -> str | None:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f'quote it: "{value.isoformat()}"'
    if isinstance(value, bool):
        return "quote it: YAML reads unquoted yes/no/on/off/true/false as booleans"
    if isinstance(value, (int, float)):
        return f'quote it: "{value}"'
    return None


def secret(ctx: Context, mapping: Mapping, path: str, key: str) -> Secret | None:
    """A credential. Whitespace is refused: it is never part of a key, and a line break would split a header."""
    value = text(ctx, mapping, path, key, secret=True)
    if value is None:
        return None
    if any(c.isspace() for c in value):
        ctx.add(child(path, key), "contains whitespace or a line break",
                "remove it (a trailing newline from a file or an echo?)")
        return None
    return Secret(value)


def _number_from(ctx: Context, where: str, value: Any, want_int: bool) -> tuple[Any, bool]:
    """Numbers from the environment arrive as strings; literal quoted numbers are a mistake worth a hint."""
    expected = "an integer" if want_int else "a number"
    if isinstance(value, str) and where in ctx.templates:
        try:
            return (int(value) if want_int else float(value)), True
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (want_int and isinstance(value, float)):
        hint = None
        if isinstance(value, str) and where not in ctx.templates:
            hint = "remove the quotes" if _is_number(value, want_int) else None
        ctx.add(where, f"expected {expected}, got {ctx.show(where, value)}", hint)
        return None, False
    if not want_int and isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            ctx.add(where, "is too large")
            return None, False
    return value, True


def _is_number(value: str, want_int: bool) -> bool:
    try:
        int(value) if want_int else float(value)
        return True
    except ValueError:
        return False


def number(ctx: Context, mapping: Mapping, path: str, key: str, *, default: float | None = None,
           integer: bool = False, minimum: float | None = None, above: float | None = None,
           maximum: float | None = None, required: bool = False) -> Any:
    """An int (integer=True) or a float; `minimum` is inclusive, `above` exclusive."""
    where = child(path, key)
    value = mapping.get(key)
    if value is None:
        if required:
            ctx.add(where, "required, but missing")
        return default
    value, ok = ctx.resolve(where, value)
    if not ok:
        return default
    shown = ctx.show(where, value)
    value, ok = _number_from(ctx, where, value, integer)
    if not ok:
        return default
    if isinstance(value, float) and not math.isfinite(value):
        ctx.add(where, f"must be a finite number, got {shown}")
    elif minimum is not None and maximum is not None and not minimum <= value <= maximum:
        ctx.add(where, f"must be between {minimum} and {maximum}, got {shown}")
    elif minimum is not None and value < minimum:
        ctx.add(where, f"must be >= {minimum}, got {shown}")
    elif above is not None and value <= above:
        ctx.add(where, f"must be > {above}, got {shown}")
    elif maximum is not None and value > maximum:
        ctx.add(where, f"must be <= {maximum}, got {shown}")
    else:
        return value if integer else float(value)
    return default


def choice(ctx: Context, mapping: Mapping, path: str, key: str, choices: tuple[str, ...], *,
           default: str | None = None, required: bool = False) -> str | None:
    value = text(ctx, mapping, path, key, required=required, default=None,
                 hint=f"one of: {', '.join(choices)}" if required else None)
    if value is None:
        return default
    if value not in choices:
        where = child(path, key)
        hint = did_you_mean(value, choices)
        listing = f"one of: {', '.join(choices)}"
        ctx.add(where, f"unknown {key} {ctx.show(where, value)}", f"{hint} ({listing})" if hint else listing)
        return default
    return value


def string_list(ctx: Context, mapping: Mapping, path: str, key: str) -> list[tuple[str, str]]:
    """A list of non-empty strings; returns (path, value) pairs so callers can locate later problems."""
    where = child(path, key)
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        hint = f"write a list: {key}: [{value}]" if isinstance(value, str) else "write a list: [a, b]"
        ctx.add(where, f"expected a list, got {ctx.show(where, value)}", hint)
        return []
    found = []
    for index, entry in enumerate(value):
        entry_path = item(where, index)
        entry, ok = ctx.resolve(entry_path, entry)
        if not ok:
            continue
        if not isinstance(entry, str) or not entry.strip():
            ctx.add(entry_path, f"expected a non-empty string, got {ctx.show(entry_path, entry)}")
            continue
        found.append((entry_path, entry))
    return found
