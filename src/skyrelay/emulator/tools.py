"""When the fake model calls a tool, which one, and with what arguments.

The decision mimics what callers rely on from real models: `required` or a named function always calls,
`auto` calls when the user's last message is about a tool (its name or a meaningful word of its description),
never right after a tool result; `none` never calls. Arguments are synthesized from the tool's JSON Schema so
that they validate against it: required properties (all of them when `required` is absent) with plausible values.
A schema is the caller's to write, so one sample is bounded as a real model's reply is by its output limit: at most
`_MAX_VALUES` values (`minItems: 1e9` or a fan-out of `$ref`s gets fewer items, then nulls), `_MAX_NESTING` nested
schemas (a `$ref` cycle ends), `_MAX_CHARS` characters of strings however long `minLength` asks them to be, and
integers within JSON's interoperable 64-bit range.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .text import some_words

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Words too common to show intent: a description containing "return" says nothing about what the user wants.
_STOPWORDS = frozenset(
    "about also been both call calls could data does each from function given have into just like make made more "
    "most only other over provide provided return returns should some specified such than that their them then "
    "there they this tool used user uses using value values very what when where which will with would your "
    "information current specific".split()
)
_CITIES = ("Paris", "Tokyo", "Nairobi", "Lima", "Oslo", "Toronto", "Sydney", "Madrid", "Seoul", "Denver")
_PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus Pauling")
_MAX_DEPTH = 5
_MAX_VALUES = 512
_MAX_NESTING = 64
_MAX_CHARS = 8192
_INT64 = (-2**63, 2**63 - 1)


class _Sampling:
    """One sample's randomness, schema root (for `$ref`) and what is left of its size budget."""

    __slots__ = ("rng", "root", "left", "nesting", "chars")

    def __init__(self, rng: random.Random, root: dict[str, Any]):
        self.rng, self.root, self.left, self.nesting, self.chars = rng, root, _MAX_VALUES, 0, _MAX_CHARS


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def _keywords(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOPWORDS}


def mentions(user_text: str, name: str, description: str) -> bool:
    """Does the user's message talk about this tool?"""
    lowered = user_text.lower()
    if name.lower() in lowered:
        return True
    said = {_stem(w) for w in _WORD.findall(lowered)}
    name_words = _keywords(" ".join(_CAMEL.sub(" ", part) for part in re.split(r"[_\-.]", name)))
    return bool(said & (name_words | _keywords(description)))


def arguments_for(parameters: dict[str, Any] | None, rng: random.Random) -> dict[str, Any]:
    """A JSON object that satisfies `parameters` (a JSON Schema of type object)."""
    if not isinstance(parameters, dict):
        return {}
    value = _sample(parameters, _Sampling(rng, parameters), "", 0)
    return value if isinstance(value, dict) else {}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _sample(schema: Any, s: _Sampling, name: str, depth: int) -> Any:
    """A value for `schema`; None once the sample's budget is spent."""
    if s.left <= 0 or s.nesting >= _MAX_NESTING:
        return None
    s.left -= 1
    s.nesting += 1
    try:
        return _sample_node(schema, s, name, depth)
    finally:
        s.nesting -= 1


def _sample_node(schema: Any, s: _Sampling, name: str, depth: int) -> Any:
    rng, root = s.rng, s.root
    if not isinstance(schema, dict):
        return some_words(rng, 2)
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _sample(options[0], s, name, depth)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part, root) if isinstance(part, dict) else {}
            merged.setdefault("properties", {}).update(part.get("properties") or {})
            merged["required"] = list(merged.get("required") or []) + list(part.get("required") or [])
            merged.setdefault("type", part.get("type"))
        return _sample(merged, s, name, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return _sample_object(schema, s, depth)
    if kind == "array":
        if depth >= _MAX_DEPTH:
            return []
        low = max(_whole(schema.get("minItems"), 1), 0)
        high = max(min(_whole(schema.get("maxItems"), 2), max(low, 2)), low)
        count = min(rng.randint(low, high), s.left)
        return [_sample(schema.get("items", {}), s, name, depth + 1) for _ in range(count)]
    if kind == "integer":
        low, high = _bounds(schema, 1, 100)
        return rng.randint(_int64(low), _int64(max(high, low)))
    if kind == "number":
        low, high = _bounds(schema, 0, 100)
        return round(rng.uniform(low, max(high, low)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    value = _sample_string(schema, rng, name, s.chars)
    s.chars -= len(value)
    return value


def _int64(value: float) -> int:
    return min(max(int(value), _INT64[0]), _INT64[1])


def _whole(value: Any, default: int) -> int:
    """A count from the schema (`minItems`, ...), or the default when it is not a number."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _sample_object(schema: dict[str, Any], s: _Sampling, depth: int) -> dict[str, Any]:
    props = schema.get("properties") or {}
    if depth >= _MAX_DEPTH or not isinstance(props, dict):
        return {}
    wanted = schema.get("required")
    names = [n for n in wanted if n in props] if isinstance(wanted, list) else list(props)
    if isinstance(wanted, list):
        names += [n for n in wanted if n not in props]  # required but undescribed: still present
    return {n: _sample(props.get(n, {}), s, n, depth + 1) for n in names}


def _bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
    if isinstance(schema.get("minimum"), (int, float)):
        low = schema["minimum"]
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        low = schema["exclusiveMinimum"] + 1
    if isinstance(schema.get("maximum"), (int, float)):
        high = schema["maximum"]
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        high = schema["exclusiveMaximum"] - 1
    if high < low:
        high = low + 100 if not isinstance(schema.get("maximum"), (int, float)) else low
    return low, high


def _sample_string(schema: dict[str, Any], rng: random.Random, name: str, room: int) -> str:
    """A plausible string for a property called `name`; `minLength` is honoured up to `room` characters."""
    fmt = schema.get("format")
    key = name.lower()
    if fmt == "date" or key.endswith("date"):
        value = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "date-time":
        value = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    elif fmt == "email" or "email" in key:
        value = f"{rng.choice(('alex', 'sam', 'kim', 'noor'))}@example.com"
    elif fmt in ("uri", "url") or key in ("url", "uri", "link"):
        value = f"https://example.com/{rng.choice(('docs', 'items', 'news'))}/{rng.randint(1, 999)}"
    elif fmt == "uuid":
        value = "%08x-%04x-4%03x-8%03x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 12, 12, 48))
    elif any(k in key for k in ("city", "location", "place", "destination")):
        value = rng.choice(_CITIES)
    elif key in ("name", "person", "author", "full_name"):
        value = rng.choice(_PEOPLE)
    elif key in ("language", "lang", "locale"):
        value = rng.choice(("en", "fr", "es", "de"))
    elif key.endswith("id"):
        value = "%x" % rng.getrandbits(40)
    else:
        value = some_words(rng, rng.randint(1, 3))
    min_len = schema.get("minLength")
    max_len = schema.get("maxLength")
    if isinstance(min_len, int) and len(value) < min_len:
        min_len = min(min_len, max(room, 0))
        value = (value + " ") * (min_len // max(len(value), 1) + 1)
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[:max_len]
    return value
