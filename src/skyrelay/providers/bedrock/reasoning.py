"""Reasoning through Converse for the Bedrock models that think and are not Claude (Claude reasons through
InvokeModel, with Anthropic's own body: see invoke.py): DeepSeek-R1, OpenAI's gpt-oss, Amazon Nova 2.

Asked for in `additionalModelRequestFields`, by family (from each model's Bedrock documentation):
    DeepSeek-R1    always thinks, takes no setting: reasoning_effort low/medium/high is honoured as is, none refused
    gpt-oss        always thinks: {"reasoning_effort": low | medium | high}; minimal reads as low, none is refused
    Nova 2         {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": low | medium | high}}; none: off
Answered as a `reasoningContent` block (`reasoningText` {text, signature?} or `redactedContent`), which becomes
a canonical thought, `{"type": "thought", "thinking": text}`: shown (a Responses reasoning item, its summary), never
handed back. Its signature is Bedrock's, for this model only; sealed as a Claude thinking block it would be sent
to a Claude deployment that cannot verify it, so the gateway keeps none and sends no reasoning back in history
(DeepSeek asks for none; the models answer without it).
"""

from __future__ import annotations

from typing import Any

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


def thought(block: Any) -> dict[str, Any] | None:
    """A canonical thought for a Converse `reasoningContent` block (None: nothing readable in it)."""
    if not isinstance(block, dict):
        return None
    text = block.get("reasoningText")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        return {"type": "thought", "thinking": text["text"]}
    return None  # redactedContent: thoughts the model provider keeps to itself, shown to nobody


def delta_text(delta: Any) -> str | None:
    """The reasoning text a stream's `reasoningContent` delta carries (signature and redactedContent: none)."""
    text = delta.get("text") if isinstance(delta, dict) else None
    return text if isinstance(text, str) and text else None
