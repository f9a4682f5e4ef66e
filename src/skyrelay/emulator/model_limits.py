"""The published per-model limits the emulated clouds enforce: the largest output and the native embedding size.

Each table maps a model id, or the family a prefix of it names, to its limit as the vendor's model pages state it;
the longest match wins, so dated snapshots (`claude-3-5-sonnet-20241022`, `gpt-4o-mini-2024-07-18`) find their
family, and a prefix only matches whole name parts (`gpt-4` is not `gpt-4.5`, `gemini-3` is not `gemini-30`).
A model in no table has no known limit: only the API's own parameter range applies to it, which is safe because
the fake model's reply length comes from the cloud's `output_tokens`, never from the requested maximum.
"""

from __future__ import annotations

_OPENAI_OUTPUT = {
    "gpt-3.5-turbo": 4096, "gpt-4": 8192, "gpt-4-turbo": 4096, "gpt-4o": 16384, "gpt-4o-2024-05-13": 4096,
    "gpt-4o-mini": 16384, "gpt-4.1": 32768, "o1": 100000, "o1-mini": 65536, "o3": 100000, "o3-mini": 100000,
    "o4-mini": 100000, "gpt-5": 128000, "gpt-5-chat": 16384,
}
_ANTHROPIC_OUTPUT = {
    "claude-3-haiku": 4096, "claude-3-opus": 4096, "claude-3-sonnet": 4096, "claude-3-5-haiku": 8192,
    "claude-3-5-sonnet": 8192, "claude-3-7-sonnet": 64000, "claude-sonnet-4-0": 64000,
    "claude-sonnet-4-20250514": 64000,
    "claude-sonnet-4-5": 64000, "claude-haiku-4-5": 64000, "claude-opus-4-0": 32000, "claude-opus-4-20250514": 32000,
    "claude-opus-4-1": 32000, "claude-opus-4-5": 64000,
}
_GEMINI_OUTPUT = {
    "gemini-1.5": 8192, "gemini-2.0": 8192, "gemini-2.5": 65536, "gemini-3": 65536,
}
# OpenAI's embedding models; `text-embedding-ada-002` is not shortened (0: `dimensions` is refused outright).
_OPENAI_EMBEDDING = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 0}
# Bedrock model ids may carry a cross-region inference profile ("us.anthropic.claude-...").
_SEPARATORS = "-@:"  # what may follow a family name: a snapshot date, Vertex's "@version", Bedrock's ":0"
_BEDROCK_PROFILES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "global.")


def _lookup(table: dict[str, int], model: str) -> int | None:
    best = None
    for prefix, limit in table.items():
        whole = model == prefix or (model.startswith(prefix) and model[len(prefix)] in _SEPARATORS)
        if whole and (best is None or len(prefix) > len(best[0])):
            best = (prefix, limit)
    return best[1] if best else None


def openai_max_output(model: str) -> int | None:
    return _lookup(_OPENAI_OUTPUT, model)


def anthropic_max_output(model: str) -> int | None:
    return _lookup(_ANTHROPIC_OUTPUT, model)


def gemini_max_output(model: str) -> int | None:
    return _lookup(_GEMINI_OUTPUT, model.removeprefix("models/"))


def bedrock_max_output(model_id: str) -> int | None:
    """Claude on Bedrock has the limits Anthropic publishes; other vendors' models: configure `max_output_tokens`."""
    model_id = model_id.rsplit("/", 1)[-1]  # an ARN ends with the model or inference profile id
    for profile in _BEDROCK_PROFILES:
        model_id = model_id.removeprefix(profile)
    if not model_id.startswith("anthropic."):
        return None
    return anthropic_max_output(model_id.removeprefix("anthropic."))


def openai_embedding_size(model: str) -> int | None:
    """The model's native vector size (0: it takes no `dimensions`); None: not an OpenAI embedding model."""
    return _lookup(_OPENAI_EMBEDDING, model)
