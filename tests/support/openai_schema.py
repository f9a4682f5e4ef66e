"""OpenAI's own OpenAPI description as a test oracle: `validate("CreateChatCompletionResponse", body)`.

The spec (/work/shared/specs/openai-openapi.yaml, or $SKYRELAY_OPENAI_SPEC) is ~3 MB of YAML. It is parsed once
per process, lazily, and the translated schemas are cached as JSON under the system temp directory, keyed by the
spec's sha256, so later processes skip the YAML parse. The document says OpenAPI 3.1 but marks nullable fields
the 3.0 way (`nullable: true`), which JSON Schema ignores; those are rewritten to admit null. `$ref`s resolve
through a `referencing` registry holding the whole components section.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml"
_ROOT_URI = "urn:skyrelay:openai-openapi"
_CACHE_VERSION = "1"
_lock = threading.Lock()
SCHEMA_NAMES = (
    "CreateChatCompletionRequest", "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse",
    "CreateEmbeddingResponse", "ListModelsResponse", "ErrorResponse", "Model",
)


def spec_path() -> Path:
    env = os.environ.get("SKYRELAY_OPENAI_SPEC")
    if env:
        return Path(env)
    for candidate in (_DEFAULT_SPEC, Path("/work/shared/specs/openai-openapi.yaml")):
        if candidate.exists():
            return candidate
    return _DEFAULT_SPEC


def _translate(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 `nullable: true` into JSON Schema, recursively; big integers become floats."""
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= 2**63:
        return float(node)  # e.g. the `seed` bounds: JSON caches (and orjson) want 64-bit integers
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()  # YAML turns unquoted example dates into objects; JSON Schema wants text
    if not isinstance(node, dict):
        return node
    out = {key: _translate(value) for key, value in node.items()}
    if out.pop("nullable", False) is not True:
        return out
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
        return out
    if isinstance(kind, list):
        if "null" not in kind:
            out["type"] = kind + ["null"]
        return out
    return {"anyOf": [out, {"type": "null"}]}  # $ref / oneOf / allOf without a type: null as an alternative


@lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    path = spec_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / f"skyrelay-openai-schemas-{_CACHE_VERSION}-{digest}.json"
    with _lock:
        try:
            return json.loads(cache.read_text())
        except (OSError, ValueError):
            pass
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document = yaml.load(raw, Loader=loader)
        schemas = _translate(document["components"]["schemas"])
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(schemas))
            os.replace(tmp, cache)  # atomic: parallel test workers never read half a file
        except OSError:
            tmp.unlink(missing_ok=True)
        return schemas


@lru_cache(maxsize=1)
def _registry() -> Registry:
    root = {"components": {"schemas": _schemas()}}
    return Registry().with_resource(_ROOT_URI, Resource.from_contents(root, default_specification=DRAFT202012))


@lru_cache(maxsize=None)
def validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in _schemas():
        raise KeyError(f"no schema {schema_name!r} in {spec_path()}")
    return Draft202012Validator({"$ref": f"{_ROOT_URI}#/components/schemas/{schema_name}"}, registry=_registry())


def _where(path) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(schema_name: str, instance: Any) -> None:
    """Raise AssertionError naming each mismatch's JSON path if `instance` does not satisfy the named schema."""
    errors = list(validator(schema_name).iter_errors(instance))
    if not errors:
        return
    best = best_match(errors)
    lines = [f"{schema_name}: {len(errors)} mismatch(es); most relevant at {_where(best.absolute_path)}: "
             f"{best.message}"]
    for err in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))[:8]:
        lines.append(f"  {_where(err.absolute_path)}: {err.message[:300]}")
    raise AssertionError("\n".join(lines))
