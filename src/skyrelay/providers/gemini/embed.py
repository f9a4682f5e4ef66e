"""OpenAI embeddings <-> the Gemini API's `batchEmbedContents` (one request for any number of inputs)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from ... import errors
from ...canonical import EmbeddingRequest, EmbeddingResponse, Usage


def build_embed_request(req: EmbeddingRequest, model_path: str, where: str) -> dict[str, Any]:
    inputs = [req.input] if isinstance(req.input, str) else req.input
    if not inputs or not all(isinstance(text, str) for text in inputs):
        raise errors.UnsupportedFeature(f"'input' must be a string or an array of strings for {where} "
                                    "(token arrays are not supported)", param="input")
    common: dict[str, Any] = {"model": model_path}
    for key, value in req.extra.items():
        if value is None or key in ("user", "encoding_format"):
            continue
        if key == "dimensions" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            common["outputDimensionality"] = value
        else:
            raise errors.UnsupportedFeature(f"'{key}' is not supported by {where}", param=key)
    if req.extra.get("encoding_format") not in (None, "float", "base64"):
        raise errors.InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    return {"requests": [{**common, "content": {"parts": [{"text": text}]}} for text in inputs]}


def parse_embed_response(data: Any, req: EmbeddingRequest, model: str, deployment: str) -> EmbeddingResponse:
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embeddings, list):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no embeddings", deployment=deployment)
    as_base64 = req.extra.get("encoding_format") == "base64"
    items = []
    for i, embedding in enumerate(embeddings):
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list):
            raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered a malformed embedding",
                                               deployment=deployment)
        vector: Any = _base64_floats(values) if as_base64 else values
        items.append({"object": "embedding", "index": i, "embedding": vector})
    usage = data.get("usageMetadata") or {}
    tokens = usage.get("promptTokenCount") if isinstance(usage, dict) else None
    input_tokens = tokens if isinstance(tokens, int) else 0  # newer API versions report it; older ones do not
    return EmbeddingResponse(model=model, data=items, usage=Usage(input_tokens=input_tokens))


def _base64_floats(values: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
