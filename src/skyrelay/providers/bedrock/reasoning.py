"""Reasoning through Converse for the Bedrock models that think and are not Claude (Claude reasons through
InvokeModel, with Anthropic's own body: see invoke.py): DeepSeek-R1, OpenAI's gpt-oss, Amazon Nova 2.

Asked for in `additionalModelRequestFields`, by family (from each model's Bedrock documentation):
    DeepSeek-R1    always thinks, takes no setting: reasoning_effort low/medium/high is honoured as is, none refused
    gpt-oss        always thinks: {"reasoning_effort": low | medium | high}; minimal reads as low, none is refused
    Nova 2         {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": low | medium | high}}; none: off
Answered as a `reasoningContent` block (`reasoningText` {text, signature?} or `redactedContent`), which becomes
a canonical thought, `{"type": "thought", "thinking": text, "signature"?: seal}`: shown (a Responses reasoning item,
its summary; an Anthropic thinking block). Bedrock's signature, valid for this model only, travels inside the
gateway's seal with the model id (seals.py), so that only a Converse deployment of the same model gets it back:
as the `reasoningContent` block opening the assistant turn, text and signature unmodified, as the Converse
reference asks of a multi-turn conversation. Unsigned reasoning (DeepSeek-R1's; DeepSeek asks for none in the
history) is never sent back.
"""

from __future__ import annotations

from typing import Any

from ... import seals

_FAMILIES = (("deepseek.r1", "deepseek"), ("gpt-oss", "gpt-oss"), ("nova-2", "nova-2"))
_EFFORTS = ("low", "medium", "high")


def family(model: str) -> str | None:
    """The reasoning family of a Converse model id (foundation model, inference profile), else None."""
    for marker, name in _FAMILIES:
        if marker in model:
            return name
    return None


def request_fields(effort: Any, name: str) -> dict[str, Any] | None:
    """`additionalModelRequestFields` for `reasoning_effort`; raises ValueError naming what the model cannot do."""
    if effort == "minimal":
        effort = "low"
    if effort not in (*_EFFORTS, "none"):
        raise ValueError(f"reasoning_effort {effort!r}")
    if name == "nova-2":
        return None if effort == "none" else {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": effort}}
    if effort == "none":
        raise ValueError("reasoning_effort 'none' (this model always reasons)")
    return {"reasoning_effort": effort} if name == "gpt-oss" else None


def thought(block: Any, model: str) -> dict[str, Any] | None:
    """A canonical thought for a Converse `reasoningContent` block of `model` (None: nothing readable in it)."""
    if not isinstance(block, dict):
        return None
    text = block.get("reasoningText")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        out = {"type": "thought", "thinking": text["text"]}
        signature = text.get("signature")
        if isinstance(signature, str) and signature:
            out["signature"] = sealed_signature(signature, model)
        return out
    return None  # redactedContent: thoughts the model provider keeps to itself, shown to nobody


def sealed_signature(signature: str, model: str) -> str:
    return seals.seal({"f": "converse", "m": model, "s": signature})


def handed_back(block: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The Converse `reasoningContent` block for a canonical thought of the history, when `model` signed it."""
    if block.get("type") != "thought":
        return None
    data = seals.unseal(block.get("signature"))
    if data is None or data.get("f") != "converse" or data.get("m") != model or not isinstance(data.get("s"), str):
        return None
    return {"reasoningContent": {"reasoningText": {"text": str(block.get("thinking") or ""), "signature": data["s"]}}}


def delta_text(delta: Any) -> str | None:
    """The reasoning text a stream's `reasoningContent` delta carries (signature and redactedContent: none)."""
    text = delta.get("text") if isinstance(delta, dict) else None
    return text if isinstance(text, str) and text else None


def delta_signature(delta: Any) -> str | None:
    """The signature a stream's `reasoningContent` delta carries: it ends the reasoning block."""
    signature = delta.get("signature") if isinstance(delta, dict) else None
    return signature if isinstance(signature, str) and signature else None
