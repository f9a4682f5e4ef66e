"""The gateway's own seals: strings it gives a client beside a cloud's thoughts and reads back when the client
hands them in again, so the thoughts return to the cloud that can take them and nowhere else:

    sky1.<base64url of a JSON object {"f": family, ...}>

`f` names who can take the sealed thoughts back. The gateway writes
  - a Responses reasoning item's `encrypted_content`: Anthropic-family thinking blocks, {"f": "anthropic",
    "b": [blocks]}, or Converse's signed thoughts (each signed as below), {"f": "converse", "b": [thoughts]}
    (protocols/responses/reasoning.py);
  - the `signature` of an Anthropic `thinking` block showing another cloud's thoughts to an Anthropic client:
    Bedrock Converse's signed reasoning, {"f": "converse", "m": model id, "s": Bedrock's signature}, handed back to
    that model only (providers/bedrock/reasoning.py); or THOUGHT, {"f": "thought"}, thoughts no cloud takes back
    (Gemini's summaries, a reasoning server's reasoning_content, DeepSeek-R1's unsigned reasoning).
Seals are not encrypted or MACed: they carry thoughts already shown to the client, and every cloud verifies its own
signature (an altered one is refused there), so a seal of the gateway's own would protect nothing.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

PREFIX = "sky1."


def seal(payload: dict[str, Any]) -> str:
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def unseal(value: Any) -> dict[str, Any] | None:
    """The payload of a seal of ours, or None for anything else (another cloud's blob or signature)."""
    if not is_sealed(value):
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(value[len(PREFIX):]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


THOUGHT = seal({"f": "thought"})  # the signature of a thought no cloud takes back


# --- Anthropic bodies -------------------------------------------------------------------------------------------


def sealed_thinking(block: Any) -> bool:
    """A `thinking` block whose signature is the gateway's (another cloud's thoughts), not Anthropic's."""
    return isinstance(block, dict) and block.get("type") == "thinking" and is_sealed(block.get("signature"))


def holds_sealed_thinking(messages: list[Any]) -> bool:
    """Whether an assistant turn holds a gateway-signed thinking block. A walk of the turns' blocks, not a search
    of the body's bytes: its cost grows with the blocks, not with the text (a search cost 4 instructions a byte)."""
    for message in messages:
        if type(message) is dict and message.get("role") == "assistant":
            content = message.get("content")
            if type(content) is list:
                for block in content:
                    if type(block) is dict and block.get("type") == "thinking":
                        signature = block.get("signature")
                        if type(signature) is str and signature.startswith(PREFIX):
                            return True
    return False


def without_sealed_thinking(messages: list[Any]) -> list[Any]:
    """The messages for an Anthropic-family cloud, which would refuse a signature it did not make: the
    assistant turns without the gateway-signed thinking blocks (the client's own list is left as it is)."""
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and message.get("role") == "assistant" and any(map(sealed_thinking, content)):
            message = {**message, "content": [b for b in content if not sealed_thinking(b)]}
        out.append(message)
    return out
