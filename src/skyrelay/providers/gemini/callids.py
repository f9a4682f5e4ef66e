"""Tool-call ids that carry Gemini's thought signatures through an OpenAI-shaped conversation.

Gemini has no tool-call ids, so the gateway makes them up. Gemini 3 (and later) models also attach an opaque
`thoughtSignature` to the first functionCall part of a turn and refuse the next request (400) when the history
comes back without it. OpenAI clients echo tool-call ids verbatim, so the signature travels inside the id:
`call_<24 hex>` or `call_<24 hex>_ts_<signature as unpadded base64url>`; the id stays within [A-Za-z0-9_-],
which every other cloud accepts too, and the gateway keeps no state.
"""

from __future__ import annotations

import os

_PREFIX = "call_"
_MARK = "_ts_"
_MARK_AT = len(_PREFIX) + 24  # the mark follows the fixed-length random part


def new_call_id(signature: str | None = None) -> str:
    call_id = _PREFIX + os.urandom(12).hex()
    if signature:
        call_id += _MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")
    return call_id


def signature_of(call_id: str) -> str | None:
    """The thought signature a gateway-made id carries (standard base64, as Gemini sent it), else None."""
    if not call_id.startswith(_PREFIX) or call_id[_MARK_AT:_MARK_AT + len(_MARK)] != _MARK:
        return None
    packed = call_id[_MARK_AT + len(_MARK):]
    if not packed:
        return None
    return packed.replace("-", "+").replace("_", "/") + "=" * (-len(packed) % 4)
