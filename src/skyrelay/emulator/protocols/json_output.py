"""Structured output for the fake model: a JSON reply that validates against the caller's schema.

Anthropic (`output_config.format`) and Gemini (`responseMimeType: application/json` + `responseSchema`) ask for
JSON text instead of prose. The reply is sampled from the schema with the same generator that fills tool
arguments, cut into token-sized pieces so it streams and truncates (`max_tokens`) like any other text.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ..generate import ChoiceOut, json_text
from ..text import prose_tokens
from ..tools import arguments_for

_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


def sample_json(schema: Any, rng: random.Random) -> Any:
    """A value of any JSON type that satisfies `schema` (a JSON Schema); without a schema, a small object."""
    if not isinstance(schema, dict) or not schema:
        return {"response": "".join(prose_tokens(rng, 8)).strip()}
    wrapper = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    if "$defs" in schema or "definitions" in schema:  # keep local $refs ("#/$defs/...") resolvable
        wrapper.update({k: schema[k] for k in ("$defs", "definitions") if k in schema})
    return arguments_for(wrapper, rng).get("value")


def json_tokens(value: Any) -> list[str]:
    text = json_text(value)
    pieces = _PIECE.findall(text)
    return pieces if "".join(pieces) == text else [text[i:i + 4] for i in range(0, len(text), 4)]


def as_json_choice(choice: ChoiceOut, value: Any, max_tokens: int | None) -> ChoiceOut:
    """`choice` with its prose replaced by `value` as JSON text (tool calls and filtered replies stay as they are)."""
    if choice.tool_calls or choice.finish == "content_filter":
        return choice
    tokens = json_tokens(value)
    finish = "stop"
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens, finish = tokens[:max_tokens], "length"
    return ChoiceOut(choice.index, tokens, [], finish, None, len(tokens))


def as_enum_choice(choice: ChoiceOut, options: list[Any], rng: random.Random) -> ChoiceOut:
    """Gemini's `text/x.enum`: the reply is exactly one of the schema's enum values."""
    if choice.tool_calls or choice.finish == "content_filter" or not options:
        return choice
    text = str(rng.choice(options))
    return ChoiceOut(choice.index, [text], [], "stop", None, 1)

