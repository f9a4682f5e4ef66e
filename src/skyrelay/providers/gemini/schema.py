"""JSON Schema (what OpenAI clients send) -> Gemini's OpenAPI-subset `Schema`, when it fits.

Gemini takes a schema in two forms: `parameters` / `responseSchema` (an OpenAPI 3.0 subset: upper-case types,
`nullable`, string enums, few string formats, non-empty object properties) and `parametersJsonSchema` /
`responseJsonSchema` (plain JSON Schema). The subset form works on every model and API version, so simple
schemas are converted to it; anything it cannot express exactly ($ref, oneOf, additionalProperties, const,
type unions, ...) goes in the JSON Schema form unchanged, rather than being trimmed until it fits.
"""

from __future__ import annotations

from typing import Any

# Keys of Gemini's Schema that mean the same as in JSON Schema (values copied as they are).
_PLAIN_KEYS = frozenset({
    "description", "title", "default", "example", "minimum", "maximum", "minItems", "maxItems", "minLength",
    "maxLength", "pattern", "minProperties", "maxProperties", "required", "propertyOrdering", "nullable",
})
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
_STRING_FORMATS = frozenset({"enum", "date-time"})
_NUMBER_FORMATS = frozenset({"float", "double", "int32", "int64"})


class _NotExpressible(Exception):
    pass


def to_gemini_schema(schema: Any) -> dict[str, Any] | None:
    """The OpenAPI-subset form of a JSON Schema, or None when it cannot be expressed exactly in it."""
    try:
        return _convert(schema)
    except _NotExpressible:
        return None


def has_no_parameters(schema: Any) -> bool:
    """An object schema without properties: Gemini wants such functions declared without `parameters`."""
    return (
        isinstance(schema, dict) and schema.get("type") == "object" and not schema.get("properties")
        and set(schema) <= {"type", "properties", "required", "additionalProperties", "$schema", "description"}
    )


def _convert(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise _NotExpressible
    out: dict[str, Any] = {}
    type_name = _type_of(schema, out)
    for key, value in schema.items():
        if key == "type":
            continue
        if key in _PLAIN_KEYS:
            out[key] = value
        elif key == "properties":
            if not isinstance(value, dict):
                raise _NotExpressible
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value)
        elif key == "anyOf":
            if not isinstance(value, list) or not value:
                raise _NotExpressible
            out[key] = [_convert(sub) for sub in value]
        elif key == "enum":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or type_name != "string":
                raise _NotExpressible
            out[key] = value
        elif key == "format":
            allowed = _STRING_FORMATS if type_name == "string" else _NUMBER_FORMATS
            if value not in allowed:
                raise _NotExpressible
            out[key] = value
        else:  # $ref, $defs, oneOf, allOf, const, additionalProperties, not, ...: only JSON Schema says these
            raise _NotExpressible
    if type_name == "object" and not out.get("properties"):
        raise _NotExpressible  # Gemini refuses OBJECT schemas without properties
    return out


def _type_of(schema: dict, out: dict) -> str | None:
    """Set `type` (and `nullable` for ["T", "null"]) on the output; return the lower-case type name."""
    value = schema.get("type")
    if value is None:
        if "anyOf" not in schema:
            raise _NotExpressible  # a schema without a type (any value) has no OpenAPI-subset form
        return None
    if isinstance(value, list):
        others = [t for t in value if t != "null"]
        if len(others) != 1 or len(value) > 2:
            raise _NotExpressible
        if len(value) == 2:
            out["nullable"] = True
        value = others[0]
    if not isinstance(value, str) or value not in _TYPES:
        raise _NotExpressible
    out["type"] = value.upper()
    return value
