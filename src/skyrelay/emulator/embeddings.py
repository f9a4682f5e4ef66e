"""Deterministic embedding vectors: unit length, derived from a hash of the model and the input.

Values are rounded to float32 first, so the float list and the base64 form (little-endian float32, what the
OpenAI SDK decodes) carry exactly the same numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import sys
from array import array
from functools import lru_cache

DEFAULT_DIMENSIONS = 1536


def embed(model: str, text_or_tokens: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> array:
    """A float32 unit vector of `dimensions` values for this input (do not modify it: it may be shared)."""
    key = text_or_tokens if isinstance(text_or_tokens, str) else tuple(text_or_tokens)
    return _embed(model, key, dimensions)


@lru_cache(maxsize=2048)  # load tests repeat their inputs; a 1536-dim vector costs ~150 us to build
def _embed(model: str, key: str | tuple[int, ...], dimensions: int) -> array:
    text_or_tokens = key if isinstance(key, str) else list(key)
    material = f"{model}\x00{text_or_tokens!r}".encode()
    raw = hashlib.shake_256(material).digest(2 * dimensions)
    values = [v / 32768.0 for v in struct.unpack(f"<{dimensions}h", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def as_floats(vector: array) -> list[float]:
    return vector.tolist()


def as_base64(vector: array) -> str:
    if sys.byteorder != "little":
        vector = array("f", vector)
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode()
