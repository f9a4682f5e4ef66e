"""Reasoning items on the translated path: a cloud's thinking blocks <-> Responses `reasoning` items.

A reasoning item's `encrypted_content` is what the client hands back on a later turn (Codex sends `store: false`
and `include: ["reasoning.encrypted_content"]`). Here it seals the thoughts a cloud can verify, tagged with the
family that can (seals.py): `sky1.<base64url of {"f": family, "b": [blocks]}>`, where family is
  - "anthropic": Anthropic's own blocks (signed `thinking`, or `redacted_thinking`);
  - "converse": a canonical thought Bedrock Converse signed, its signature the gateway's seal of Bedrock's (and of
    the model id: providers/bedrock/reasoning.py), handed back to a Converse deployment of that model only.
Unsigned thoughts (Gemini's, DeepSeek-R1's) are sealed into nothing: no cloud takes them back. Blobs of any other
origin (OpenAI's own, passed through from a native deployment) are not ours to open.
"""

from __future__ import annotations

from typing import Any

from ... import seals

ANTHROPIC = "anthropic"  # the family whose thinking blocks can be handed back (Anthropic's API, Bedrock, Vertex)
CONVERSE = "converse"  # Bedrock Converse's signed thoughts (canonical `thought` blocks)
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"


def seal(blocks: list[dict[str, Any]], family: str = ANTHROPIC) -> str:
    return seals.seal({"f": family, "b": blocks})


def unseal(value: Any) -> list[dict[str, Any]] | None:
    """The thinking blocks a reasoning item's encrypted_content carries, or None when it is not a seal of ours."""
    data = seals.unseal(value)
    check = _CHECKS.get(data.get("f")) if data is not None else None
    blocks = data.get("b") if check is not None else None
    if not isinstance(blocks, list) or not all(check(b) for b in blocks):
        return None
    return blocks


def _is_signed_thought(block: Any) -> bool:
    """A canonical thought carrying a signature a cloud verifies (only Converse's signed reasoning has one:
    seals.py; THOUGHT marks one no cloud takes back)."""
    if not isinstance(block, dict) or block.get("type") != "thought":
        return False
    signature = block.get("signature")
    return isinstance(block.get("thinking"), str) and seals.is_sealed(signature) and signature != seals.THOUGHT


def _is_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") == "thinking":
        return isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    return block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str)


_CHECKS = {ANTHROPIC: _is_block, CONVERSE: _is_signed_thought}


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
    sealed = _sealed(blocks, text)
    out["encrypted_content"] = sealed if shown.sealed else None
    if not shown.sealed and shown.kept is not None and sealed is not None:
        shown.kept[item_id] = sealed
    return out


def _sealed(blocks: list[dict[str, Any]], text: str) -> str | None:
    """The seal of the blocks a cloud can take back (None: none can), Anthropic's first; a signed thought carries
    the whole text (a stream's closing block carries only the signature: its text came as fragments)."""
    anthropic = [b for b in blocks if _is_block(b)]
    if anthropic:
        return seal(anthropic)
    thoughts = [{**b, "thinking": b["thinking"] or text} for b in blocks if _is_signed_thought(b)]
    return seal(thoughts, CONVERSE) if thoughts else None


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}
