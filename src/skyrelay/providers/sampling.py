"""The sampling settings every cloud has, each under its own names: written once, named per cloud."""

from __future__ import annotations

from typing import Any

from ..canonical import ChatRequest


def sampling_fields(req: ChatRequest, *, max_tokens: str | None, top_p: str, stop: str) -> dict[str, Any]:
    """The sampling settings every cloud has, under that cloud's own names (max_tokens=None: set elsewhere)."""
    fields: dict[str, Any] = {}
    if max_tokens is not None and req.max_tokens is not None:
        fields[max_tokens] = req.max_tokens
    if req.temperature is not None:
        fields["temperature"] = req.temperature
    if req.top_p is not None:
        fields[top_p] = req.top_p
    if req.stop:
        fields[stop] = req.stop
    return fields
