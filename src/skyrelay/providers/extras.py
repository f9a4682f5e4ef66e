"""The OpenAI request fields every non-OpenAI provider may leave out, because they ask for nothing it could fail
to honour. One table, so the clouds agree on what is harmless.

Each cloud first takes the extra fields it maps or forwards (Gemini's `seed` and penalties, Anthropic's `top_k`),
then consults this table; whatever is left is a feature the cloud cannot honour and must be refused with
errors.UnsupportedFeature, never silently dropped.
"""

from __future__ import annotations

from typing import Any

# Fields that change nothing about the answer.
IGNORED = frozenset({
    "user", "metadata", "store", "service_tier", "stream", "stream_options", "parallel_tool_calls",
    "prompt_cache_key", "safety_identifier",
})
# Fields whose default value asks for nothing; any other value asks for a feature.
HARMLESS_DEFAULTS: dict[str, Any] = {
    "n": 1, "logprobs": False, "top_logprobs": 0, "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {},
    "modalities": ["text"],
}
_NO_DEFAULT = object()


def is_harmless(key: str, value: Any) -> bool:
    """True when extra field `key` may be left out: null (not given), ignored, or at its harmless default."""
    return value is None or key in IGNORED or value == HARMLESS_DEFAULTS.get(key, _NO_DEFAULT)
