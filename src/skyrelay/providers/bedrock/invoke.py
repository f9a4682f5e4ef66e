"""Claude on Bedrock for an Anthropic client: InvokeModel with Anthropic's own Messages body, not Converse.

InvokeModel keeps nearly everything Converse would have to map or lose: cache_control breakpoints where the client
put them, thinking (enabled, adaptive, disabled) and the signed thinking blocks in history, documents, citations,
tool-result images, context_management and output_config. The body is the client's, with `model` and `stream`
taken out (the URL and the operation say them), `anthropic_version: bedrock-2023-05-31` added, and the client's
anthropic-beta header as the `anthropic_beta` list. What Bedrock's body has no place for is left out and named
when it cannot change the answer (`metadata`: an end-user id; capacity and placement hints), and refused when
it would (`mcp_servers`, `container`: tools and sandboxes only Anthropic's API runs). The answer is Anthropic's
message as is; the stream is an event stream of `chunk` events, each a Messages event in base64 JSON.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from ... import errors
from ...canonical import AnthropicNative, ChatChunk
from ..anthropic.passthrough import PassThroughEvents, leave_out_sealed
from ..base import load_json
from .errors import error_from_event
from .eventstream import EventStreamReader

VERSION = "bedrock-2023-05-31"
# Best effort (extras.py's rule): left out, named in x-skyrelay-dropped-params.
DROPPED = frozenset({"metadata", "service_tier", "inference_geo", "speed", "diagnostics"})
# Answer-changing, and Bedrock runs neither: refused, so another deployment (Anthropic's API) can serve.
REFUSED = frozenset({"mcp_servers", "container"})
_TAKEN_OUT = frozenset({"model", "stream"}) | DROPPED


def speaks_anthropic(model: str) -> bool:
    """Claude models (and their inference profiles: `us.anthropic.claude-...`) take Anthropic's body."""
    return "anthropic." in model or "claude" in model


def invoke_body(native: AnthropicNative, deployment: str) -> dict[str, Any]:
    body = native.body
    for name in REFUSED:
        if name in body:
            raise errors.UnsupportedFeature(
                f"'{name}' is not supported by deployment '{deployment}' (bedrock): only Anthropic's API runs it",
                param=name)
    out = {key: value for key, value in body.items() if key not in _TAKEN_OUT}
    out["anthropic_version"] = VERSION
    if native.beta:
        out["anthropic_beta"] = [name.strip() for name in native.beta.split(",") if name.strip()]
    if native.sealed:
        leave_out_sealed(out)
    return out


def count_tokens_body(native: AnthropicNative, deployment: str) -> dict[str, Any]:
    """CountTokens for InvokeModel: the InvokeModel body, base64 (a blob in Bedrock's JSON). That body requires
    max_tokens, which a count_tokens request has no reason to carry: the smallest valid value stands in (it counts
    no input): 1, or one above a thinking budget, which must stay below it."""
    body = invoke_body(native, deployment)
    if "max_tokens" not in body:
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        body["max_tokens"] = budget + 1 if type(budget) is int and budget > 0 else 1
    return {"input": {"invokeModel": {"body": base64.b64encode(orjson.dumps(body)).decode()}}}


def dropped(native: AnthropicNative) -> tuple[str, ...]:
    return tuple(name for name in native.body if name in DROPPED)


class InvokeStreamDecoder:
    """InvokeModelWithResponseStream's event stream -> the Anthropic events inside it -> chunks: pass-through
    chunks for an Anthropic client, or canonical ones (`events`: the Anthropic stream decoder) for any other."""

    __slots__ = ("_buffer", "events", "deployment")

    def __init__(self, deployment: str, events: Any = None):
        self._buffer = EventStreamReader()
        self.events = events if events is not None else PassThroughEvents(deployment)
        self.deployment = deployment

    def feed(self, data: bytes) -> list[ChatChunk]:
        chunks: list[ChatChunk] = []
        try:
            for headers, payload in self._buffer.feed(data):
                if headers.get(":message-type", "event") != "event":
                    raise error_from_event(headers, payload, self.deployment)
                if headers.get(":event-type") != "chunk" or self.events.done:
                    continue
                chunks += self.events.decode(None, self._inner(payload))
        except ValueError as exc:  # MalformedEventStream, or a payload's own (bad base64)
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' sent a malformed event stream: {type(exc).__name__}",
                deployment=self.deployment) from None
        return chunks

    def _inner(self, payload: bytes) -> bytes:
        data = load_json(payload, self.deployment, "sent a stream chunk")
        encoded = data.get("bytes") if isinstance(data, dict) else None
        if not isinstance(encoded, str):
            raise errors.UpstreamProtocolError(f"deployment '{self.deployment}' sent a chunk without bytes",
                                               deployment=self.deployment)
        return base64.b64decode(encoded)

    def finish(self) -> list[ChatChunk]:
        return self.events.finish()
