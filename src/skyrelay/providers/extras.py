"""What a non-OpenAI cloud does with the OpenAI request fields it has no twin for. One table, so the clouds agree.

Each cloud first takes the extra fields it maps or forwards (its `HONOURED_EXTRAS`: Gemini's `seed` and penalties,
Anthropic's `top_k`), then asks this table about the rest:

- **best effort** (`BEST_EFFORT`): the answer is still a correct answer without the field (a determinism hint,
  an end-user id for abuse monitoring, storage or caching hints). The cloud leaves it out of its request, and the
  gateway names it in the answer's `x-skyrelay-dropped-params` header (`dropped`).
- **at a harmless default** (`HARMLESS_DEFAULTS`, or null): asks for nothing; left out, and named nowhere.
- **answer-changing**: anything else (`logprobs`, `n` > 1, a `logit_bias`, non-zero penalties, audio output,
  unknown fields). Leaving it out would change the answer behind the client's back, so the cloud refuses it with
  errors.UnsupportedFeature and the dispatcher tries a deployment that can honour it (or answers 400).
"""

from __future__ import annotations

from typing import Any, Iterable

BEST_EFFORT = frozenset({
    "seed",  # determinism is best effort even at OpenAI (the answer's system_fingerprint may change)
    "user", "safety_identifier",  # end-user ids for the provider's abuse monitoring
    "metadata", "store",  # OpenAI's stored completions: a copy kept for the account, not part of the answer
    "service_tier",  # a price / latency tier: the answer is the same
    "prompt_cache_key",  # a prompt-cache routing hint
    "prediction",  # Predicted Outputs: a latency optimisation; the answer is the same
})
# Read by the gateway itself (the canonical request carries their meaning); never a cloud's concern.
GATEWAY_FIELDS = frozenset({"stream", "stream_options"})
# Answer-changing fields at the value that asks for nothing.
HARMLESS_DEFAULTS: dict[str, Any] = {
    "n": 1, "logprobs": False, "top_logprobs": 0, "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {},
    "modalities": ["text"], "parallel_tool_calls": True,
    "reasoning_effort": "none",  # no thinking asked: a model that has none serves it as it is
}
_NO_DEFAULT = object()


def may_leave_out(key: str, value: Any) -> bool:
    """True when a cloud that does not honour extra field `key` may still serve the request without it: null
    (not given), best effort, handled by the gateway, or at its harmless default. False: refuse it."""
    return (value is None or key in BEST_EFFORT or key in GATEWAY_FIELDS
            or value == HARMLESS_DEFAULTS.get(key, _NO_DEFAULT))


def dropped(extra: dict[str, Any], honoured: Iterable[str]) -> tuple[str, ...]:
    """The best-effort fields of `extra` that a cloud honouring only `honoured` left out, in the request's order."""
    return tuple(key for key, value in extra.items()
                 if value is not None and key in BEST_EFFORT and key not in honoured)
