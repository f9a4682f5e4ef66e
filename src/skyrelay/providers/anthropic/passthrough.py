"""An Anthropic client's request to a cloud that speaks Anthropic's Messages API: forwarded, not rebuilt.

The client's body goes out with only `model` swapped (and `stream` set as the call needs); its anthropic-beta and
anthropic-version headers go with it. The answer comes back as the cloud sent it (ChatResponse.anthropic,
ChatChunk.anthropic), while the canonical fields the gateway itself needs (usage with cache reads and writes apart,
where output starts, how the stream ends) are read from it on the way. Bedrock's InvokeModel reuses the events
reader: its stream carries the same events, wrapped in its own framing.
"""

from __future__ import annotations

import time
from typing import Any

from ...canonical import AnthropicNative, ChatChunk, ChatResponse, Choice, Usage
from ...seals import without_sealed_thinking
from ..base import load_json
from .response import finish_reason, parse_usage
from .stream import StreamDecoder

BETA_QUERY = "?beta=true"
# Generation settings a Messages body may carry and a count_tokens body does not take: left out of a count.
_NOT_COUNTED = frozenset({"max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k", "metadata",
                          "service_tier", "container", "diagnostics", "inference_geo"})


def native_body(native: AnthropicNative, model: str, stream: bool) -> dict[str, Any]:
    """The client's body for this deployment's model: a shallow copy, so a retry elsewhere starts from the
    client's own again."""
    body = dict(native.body)
    body["model"] = model
    if native.sealed:
        leave_out_sealed(body)
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def count_body(native: AnthropicNative, model: str) -> dict[str, Any]:
    """The client's count_tokens body (or a Messages body) for this deployment's model, as count_tokens takes it."""
    body = {key: value for key, value in native.body.items() if key not in _NOT_COUNTED}
    body["model"] = model
    if native.sealed:
        leave_out_sealed(body)
    return body


def leave_out_sealed(body: dict[str, Any]) -> None:
    """Take the thinking blocks the gateway signed (another cloud's thoughts) out of `body`, a copy of the client's:
    an Anthropic-family cloud would refuse their signatures (AnthropicNative.sealed)."""
    body["messages"] = without_sealed_thinking(body["messages"])


def native_headers(headers: list[tuple[str, str]], native: AnthropicNative) -> list[tuple[str, str]]:
    """The deployment's headers, with the client's anthropic-version (when it sent one) and anthropic-beta."""
    if native.version is None and native.beta is None:
        return headers
    out = [h for h in headers if h[0] != "anthropic-version"] if native.version is not None else list(headers)
    if native.version is not None:
        out.append(("anthropic-version", native.version))
    if native.beta is not None:
        out.append(("anthropic-beta", native.beta))
    return out


def whole_message(raw: bytes, data: Any, deployment: str) -> ChatResponse:
    """The cloud's message, to forward as is; its usage read for the gateway (the rest when asked for)."""
    if not isinstance(data, dict):
        return ChatResponse(id="", model="", created=0, choices=[], usage=parse_usage(None), anthropic=raw)
    return _ForwardedMessage(raw, data, parse_usage(data.get("usage")))


def _on_first_read(name: str, read: Any) -> property:
    """A ChatResponse field read from the message when first asked for, then kept in the field's own slot."""
    slot = ChatResponse.__dict__[name]

    def get(response: "_ForwardedMessage") -> Any:
        try:
            return slot.__get__(response)
        except AttributeError:  # not read yet
            value = read(response.message)
            slot.__set__(response, value)
            return value

    return property(get, slot.__set__)


class _ForwardedMessage(ChatResponse):
    """A forwarded message's ChatResponse. The route forwards `anthropic` as it came and the gateway reads only
    `usage`: id, model, created and choices (the stop reason) are read from the message only if asked for, as
    the OpenAI pass-through's choices are."""

    __slots__ = ("message",)

    id = _on_first_read("id", lambda message: str(message.get("id", "")))
    model = _on_first_read("model", lambda message: str(message.get("model", "")))
    created = _on_first_read("created", lambda message: int(time.time()))
    choices = _on_first_read(
        "choices", lambda message: [Choice(finish_reason=finish_reason(message.get("stop_reason")))])

    def __init__(self, raw: bytes, message: dict[str, Any], usage: Usage) -> None:  # not the dataclass's
        self.anthropic, self.message, self.usage = raw, message, usage
        self.raw = self.raw_body = self.responses = self.responses_data = None


class PassThroughEvents:
    """Anthropic's events, read for the gateway (StreamDecoder) and kept for the client as SSE bytes.

    Every chunk carries the events it stands for; events that make no chunk of their own (ping, block starts
    and stops, signature deltas) ride with the next one, so nothing is lost and nothing is reordered."""

    __slots__ = ("inner", "pending")

    def __init__(self, deployment: str):
        self.inner = StreamDecoder(deployment, reasoning=True)
        self.pending = b""

    @property
    def done(self) -> bool:
        return self.inner.done

    def decode(self, event: str | None, payload: bytes) -> list[ChatChunk]:
        chunks = self.inner.decode(event, payload)
        name = event.encode() if event else _event_type(payload, self.inner.deployment)
        raw = b"event: " + name + b"\ndata: " + payload + b"\n\n"
        if not chunks:
            self.pending += raw
            return chunks
        if self.pending:
            raw, self.pending = self.pending + raw, b""
        chunks[0].anthropic = raw
        for chunk in chunks[1:]:
            chunk.anthropic = b""
        return chunks

    def finish(self) -> list[ChatChunk]:
        return self.inner.finish()


def _event_type(payload: bytes, deployment: str) -> bytes:
    """An event's name from its JSON (Bedrock's chunks carry no SSE name): Anthropic puts `type` first."""
    if payload.startswith(b'{"type":"'):
        end = payload.find(b'"', 9)
        if end > 9:
            return payload[9:end]
    data = load_json(payload, deployment, "sent a stream event")
    kind = data.get("type") if isinstance(data, dict) else None
    return kind.encode() if isinstance(kind, str) else b"message"
