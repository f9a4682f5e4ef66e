"""Reasoning on Bedrock's Converse API, for the non-Claude models that think: DeepSeek-R1, OpenAI's gpt-oss,
Amazon Nova 2 (Claude's thinking goes through InvokeModel, bedrock_invoke.py).

From the public Converse reference (botocore's bedrock-runtime model): the answer's content opens with a
`reasoningContent` block, `{"reasoningText": {"text", "signature"?}}` (or `{"redactedContent": blob}`), and
ConverseStream sends it as `contentBlockDelta` events whose delta is `{"reasoningContent": {"text"}}`, then
`{"reasoningContent": {"signature"}}`, with no `contentBlockStart` (the start union has no reasoning member).
Bedrock's TokenUsage has no reasoning count: the thinking is part of `outputTokens`.

How each family is asked, in `additionalModelRequestFields`:
    DeepSeek-R1    always thinks; takes no reasoning field
    gpt-oss        always thinks; `reasoning_effort`: low | medium | high
    Nova 2         thinks when `reasoningConfig: {"type": "enabled", "maxReasoningEffort": low | medium | high}`
Signatures: the emulated gpt-oss and Nova 2 sign their reasoning (an HMAC this emulator checks when the block
comes back in an assistant turn, as a cloud verifies its own); the emulated DeepSeek-R1 signs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from typing import Any

from ..text import prose_tokens
from .bedrock_wire import validation

_FAMILIES = (("deepseek.r1", "deepseek"), ("gpt-oss", "gpt-oss"), ("nova-2", "nova-2"))
_SIGNED = frozenset({"gpt-oss", "nova-2"})
_EFFORTS = ("low", "medium", "high")
_PIECES = {"low": 6, "medium": 12, "high": 24}  # the thinking's length in prose tokens, by effort
_SALT = 0x7273  # thoughts drawn apart from the answer, which the same seed draws
_KEY = b"skyrelay-emulator/bedrock-reasoning"


class Reasoning:
    """The thinking of one answer: its pieces (streamed one delta each) and its signature (None: unsigned)."""

    __slots__ = ("pieces", "signature")

    def __init__(self, pieces: list[str], signature: str | None):
        self.pieces = pieces
        self.signature = signature

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces)

    def block(self) -> dict[str, Any]:
        text: dict[str, Any] = {"text": self.text}
        if self.signature is not None:
            text["signature"] = self.signature
        return {"reasoningContent": {"reasoningText": text}}


def family(model: str) -> str | None:
    for marker, name in _FAMILIES:
        if marker in model:
            return name
    return None


def for_request(payload: dict[str, Any], model: str, seed: int) -> Reasoning | None:
    """The thinking this request gets (None: the model does not think, or was not asked to); raises Bedrock's
    ValidationException for a reasoning field the model does not take."""
    name = family(model)
    fields = payload.get("additionalModelRequestFields") or {}
    effort = _effort(name, fields)
    if name is None or effort is None:
        return None
    _check_history(payload.get("messages") or [])
    pieces = prose_tokens(random.Random(seed ^ _SALT), _PIECES[effort])
    return Reasoning(pieces, sign("".join(pieces)) if name in _SIGNED else None)


def _effort(name: str | None, fields: dict[str, Any]) -> str | None:
    """How hard the model thinks (None: not at all)."""
    if name == "gpt-oss":
        effort = fields.get("reasoning_effort", "medium")
        if effort not in _EFFORTS:
            raise validation(f"The model returned the following errors: reasoning_effort: expected one of "
                             f"{', '.join(_EFFORTS)}, got {effort!r}")
        return effort
    if name == "nova-2":
        config = fields.get("reasoningConfig")
        if config is None:
            return None
        if not isinstance(config, dict) or config.get("type") not in ("enabled", "disabled"):
            raise validation("Malformed input request: reasoningConfig.type must be 'enabled' or 'disabled'")
        effort = config.get("maxReasoningEffort", "low")
        if effort not in _EFFORTS:
            raise validation(f"Malformed input request: reasoningConfig.maxReasoningEffort must be one of "
                             f"{', '.join(_EFFORTS)}")
        return effort if config["type"] == "enabled" else None
    if name == "deepseek":
        if "reasoning_effort" in fields or "reasoningConfig" in fields:
            raise validation("The model returned the following errors: DeepSeek-R1 takes no reasoning settings")
        return "medium"
    return None


def sign(text: str) -> str:
    return base64.b64encode(hmac.new(_KEY, text.encode(), hashlib.sha256).digest()).decode()


def _check_history(messages: list[Any]) -> None:
    """A signed reasoning block handed back must be the model's own, unaltered."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for block in message.get("content") or ():
            text = (block.get("reasoningContent") or {}).get("reasoningText") if isinstance(block, dict) else None
            if not isinstance(text, dict) or text.get("signature") is None:
                continue
            if not hmac.compare_digest(str(text["signature"]), sign(str(text.get("text", "")))):
                raise validation(f"messages.{i}.content: the reasoning block's signature is invalid; hand the "
                                 "reasoning back unmodified")
