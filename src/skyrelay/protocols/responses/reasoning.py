"""Reasoning items on the translated path: a cloud's thinking blocks <-> Responses `reasoning` items.

A reasoning item's `encrypted_content` is what the client hands back on a later turn (Codex sends `store: false`
and `include: ["reasoning.encrypted_content"]`). Here it seals the cloud's own thinking blocks (Anthropic's
signed `thinking`, or `redacted_thinking`), tagged with the cloud family that can verify them (seals.py):
`sky1.<base64url of {"f": "anthropic", "b": [blocks]}>`. Blobs of any other origin (OpenAI's own, passed through
from a native deployment) are not ours to open.
"""

from __future__ import annotations

from typing import Any

from ... import seals

ANTHROPIC = "anthropic"  # the family whose thinking blocks can be handed back (Anthropic's API, Bedrock, Vertex)
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"


def seal(blocks: list[dict[str, Any]]) -> str:
    return seals.seal({"f": ANTHROPIC, "b": blocks})


def unseal(value: Any) -> list[dict[str, Any]] | None:
    """The thinking blocks a reasoning item's encrypted_content carries, or None when it is not a seal of ours."""
    data = seals.unseal(value)
    blocks = data.get("b") if data is not None and data.get("f") == ANTHROPIC else None
    if not isinstance(blocks, list) or not all(_is_block(b) for b in blocks):
        return None
    return blocks


def _is_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") == "thinking":
        return isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    return block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str)


class Shown:
    """What the request asked to see of the reasoning: a summary (`reasoning.summary`), the sealed blocks
    (`include` or `store: false`)."""

    __slots__ = ("summary", "sealed", "kept")

    def __init__(self, data: dict[str, Any], kept: dict[str, str] | None = None):
        self.kept = kept  # where the seals not shown go (ResponsesNative.kept), when the response is stored
        reasoning = data.get("reasoning")
        self.summary = isinstance(reasoning, dict) and (
            reasoning.get("summary") is not None or reasoning.get("generate_summary") is not None)
        include = data.get("include")
        self.sealed = data.get("store") is False or (isinstance(include, list) and ENCRYPTED_INCLUDE in include)


def item(item_id: str, blocks: list[dict[str, Any]], shown: Shown, text: str | None = None) -> dict[str, Any]:
    """A finished reasoning item for these blocks; `text`: the thoughts as streamed (else read from the blocks)."""
    if text is None:
        text = "".join(b.get("thinking", "") for b in blocks)
    out: dict[str, Any] = {"id": item_id, "type": "reasoning",
                           "summary": [summary_part(text)] if shown.summary and text else []}
    blocks = [b for b in blocks if _is_block(b)]  # only the Anthropic family's can go back (not Gemini's thoughts)
    out["encrypted_content"] = seal(blocks) if shown.sealed and blocks else None
    if not shown.sealed and shown.kept is not None and blocks:
        shown.kept[item_id] = seal(blocks)
    return out


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}
