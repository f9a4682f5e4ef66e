"""The one internal vocabulary every inbound protocol and every provider meets in.

Messages, tools and tool choices use the OpenAI chat shapes (plain dicts), because that vocabulary is the
de-facto lingua franca of the field and lets the OpenAI -> OpenAI-compatible path pass bodies through without
re-encoding. Everything the gateway itself reasons about (model, stream, limits, usage, finish reasons) is typed.

Canonical message dicts:
  {"role": "system"|"developer"|"user"|"assistant"|"tool",
   "content": str | None | [{"type": "text", "text": str}
                            | {"type": "image_url", "image_url": {"url": "data:<mime>;base64,..." | "https://..."}}],
   "tool_calls": [{"id": str, "type": "function", "function": {"name": str, "arguments": str(JSON)}}],  # assistant
   "tool_call_id": str}                                                                                  # tool
Canonical tools: [{"type": "function", "function": {"name", "description", "parameters"}}]
Canonical thinking blocks (a reasoning model's signed thoughts, in Anthropic's shapes, the only cloud family whose
thoughts can be handed back): {"type": "thinking", "thinking": str, "signature": str}
                            | {"type": "redacted_thinking", "data": str}
                            | {"type": "thought", "thinking": str, "signature"?: str}  (another cloud's thoughts:
                              Gemini's summary, a reasoning server's, Converse's; `signature`, when its cloud takes
                              them back, is the gateway's seal (seals.py), made and read by that cloud's provider)
Canonical tool_choice: "auto" | "none" | "required" | {"type": "function", "function": {"name": str}}
Finish reasons: "stop" | "length" | "tool_calls" | "content_filter"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # part of input_tokens served from the provider's prompt cache (a cache read)
    cache_write_tokens: int = 0  # part of input_tokens written to the provider's prompt cache (priced apart)
    reasoning_tokens: int = 0  # part of output_tokens the model spent thinking, where its cloud counts them apart

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# A stream's closing usage chunk when its cloud reported none (Bedrock's metadata, Gemini's usageMetadata never
# came): zeros for a client that asked for a usage chunk, but no usage for the ledger and the budget, which keep
# the request's estimate (the cloud produced, and bills, what it streamed). Told apart by identity; never changed.
UNREPORTED_USAGE = Usage()


@dataclass(slots=True)
class ChatRequest:
    model: str  # the public model-group name the client asked for
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False  # the client asked for a final usage chunk in the stream
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # Fields the gateway does not interpret (seed, logprobs, n, user, metadata, ...): passed through unchanged
    # to OpenAI-compatible upstreams; other providers honour what they can and refuse the rest.
    extra: dict[str, Any] = field(default_factory=dict)
    # The original OpenAI request body, when the client spoke OpenAI: the fast path forwards it as is.
    raw: dict[str, Any] | None = None
    # The client's Anthropic Messages request, when it spoke Anthropic: Anthropic-family clouds forward it, and the
    # canonical fields above are filled from it only when another cloud serves (AnthropicNative.canonical).
    anthropic: "AnthropicNative | None" = None
    # The client's Responses API request (POST /v1/responses): deployments that speak it forward it, the others get
    # the canonical fields above, filled from it on first need (ResponsesNative.canonical).
    responses: "ResponsesNative | None" = None
    # The thinking blocks of earlier assistant turns, by the index of their message in `messages`: kept beside the
    # messages (which stay OpenAI-shaped for the clouds that forward them), handed back by the clouds that take
    # them (Anthropic-family clouds their own; Converse its signed thoughts: Provider.hands_back).
    thinking: dict[int, list[dict[str, Any]]] | None = None
    # The client asked to see the model's thoughts (Responses `reasoning.summary`, Anthropic `thinking` enabled or
    # adaptive): clouds that show them only when asked (Gemini's includeThoughts) ask for them.
    show_thoughts: bool = False


@dataclass(slots=True)
class ResponsesNative:
    """A Responses API request as the client sent it, with what the gateway keeps beside it."""

    body: dict[str, Any]
    convert: Any = None  # fills the canonical fields from `body` (the inbound protocol's), raising what it cannot
    converted: bool = False
    refusal: Exception | None = None
    dropped: tuple[str, ...] = ()  # what the canonical form served the request without (x-skyrelay-dropped-params)
    # What only an Anthropic-family cloud honours (thinking handed back, a summary of its visible thoughts): named
    # as dropped when another cloud serves.
    anthropic_only: tuple[str, ...] = ()
    # previous_response_id resolved by the gateway's store: the deployment that produced it (forwarded as is there)
    # and the stored conversation, which every other deployment gets in front of the input instead.
    previous_deployment: str | None = None
    history: list[dict[str, Any]] | None = None
    # The sealed thinking of reasoning items the client was not shown (no `include`), by item id: a stored
    # response's conversation keeps it, so a `previous_response_id` turn hands the thoughts back all the same.
    kept: dict[str, str] | None = None

    def full_input(self) -> Any:
        """The input behind the stored conversation, as one list of items (the input as sent without one)."""
        value = self.body.get("input")
        if not self.history:
            return value
        if isinstance(value, str):
            value = [{"type": "message", "role": "user", "content": value}]
        return [*self.history, *(value if isinstance(value, list) else ())]

    def canonical(self, req: "ChatRequest") -> "ChatRequest":
        if not self.converted:
            self.converted = True
            try:
                self.convert(req)
            except Exception as exc:
                self.refusal = exc
        if self.refusal is not None:
            raise self.refusal
        return req


@dataclass(slots=True)
class AnthropicNative:
    """An Anthropic Messages request as the client sent it: the body, the headers that shape it, `?beta=true`."""

    body: dict[str, Any]
    beta: str | None = None  # the anthropic-beta header (comma-separated feature names)
    version: str | None = None  # the anthropic-version header
    beta_query: bool = False  # the request came to /v1/messages?beta=true (the SDKs' beta namespace)
    # Fills the request's canonical fields from `body` (once); raises UnsupportedFeature naming what the
    # canonical request cannot carry. Set by the inbound protocol, which owns the conversion.
    convert: Any = None
    converted: bool = False
    refusal: Exception | None = None  # what the conversion refused, raised again for every other cloud
    # The body's bytes as sent and how the inbound protocol finds its hints in them (`hints`, read on first use:
    # a cloud that speaks Anthropic forwards them and never asks).
    sent: bytes = b""
    find_hints: Any = None
    found_hints: tuple[str, ...] | None = None
    # The history holds thinking blocks the gateway signed (another cloud's thoughts, seals.py): Anthropic-family
    # clouds, which would refuse the signature, get the body without them (named as dropped).
    sealed: bool = False

    def canonical(self, req: "ChatRequest") -> "ChatRequest":
        if not self.converted:
            self.converted = True
            try:
                self.convert(req)
            except Exception as exc:
                self.refusal = exc
        if self.refusal is not None:
            raise self.refusal
        return req

    @property
    def hints(self) -> tuple[str, ...]:
        """Fields every non-Anthropic cloud serves the request without (cache_control, ...): named to the client."""
        if self.found_hints is None:
            self.found_hints = () if self.find_hints is None else self.find_hints(self.body, self.sent)
        return self.found_hints


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON text, exactly as the model produced it


@dataclass(slots=True)
class Choice:
    index: int = 0
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    refusal: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None  # the model's thoughts, where its cloud shows them


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str  # the model that answered, as the upstream named it
    created: int
    choices: list[Choice]
    usage: Usage
    # The upstream's OpenAI-shaped body when it already is one: the OpenAI protocol renders it without rebuilding,
    # and forwards `raw_body` (the same body as bytes) without even re-encoding it.
    raw: dict[str, Any] | None = None
    raw_body: bytes | None = None
    # The upstream's Anthropic Messages body, when an Anthropic request passed through: the Anthropic route
    # forwards it as is (the canonical fields then carry usage only).
    anthropic: bytes | None = None
    # The upstream's Response object, when a Responses request passed through (parsed: `responses_data`, for the store).
    responses: bytes | None = None
    responses_data: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a fragment of the JSON text


@dataclass(slots=True)
class ChatChunk:
    id: str
    model: str
    created: int
    index: int = 0  # which choice this delta belongs to
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None  # set on the (choice-less) usage chunk only
    # The upstream's OpenAI chunk JSON, when it already is one: forwarded byte for byte.
    raw: bytes | None = None
    reasoning: str | None = None  # a fragment of the model's thinking (clouds that show it)
    thinking_block: dict[str, Any] | None = None  # a thinking block just finished, with its signature
    # The upstream's Anthropic events this chunk stands for, when an Anthropic request passed through.
    anthropic: bytes | None = None
    # Several of the upstream's OpenAI SSE events, whole and unread, when an OpenAI request passed through.
    sse: bytes | None = None
    # The upstream's Responses API event this chunk stands for (SSE bytes), when a Responses request passed through;
    # on the final event, its Response object (`responses_data`, for the store).
    responses: bytes | None = None
    responses_data: dict[str, Any] | None = None

    def has_output(self) -> bool:
        """Real output (text, a tool call, reasoning, a finish, usage), not a preamble: the role announcement, an
        empty delta, a filter notice. A stream commits to its deployment at its first chunk with output."""
        return bool(self.content or self.tool_calls or self.reasoning or self.finish_reason is not None
                    or self.usage is not None or self.thinking_block is not None)


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    input: str | list[Any]
    extra: dict[str, Any] = field(default_factory=dict)  # encoding_format, dimensions, user, ...
    raw: dict[str, Any] | None = None


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    data: list[dict[str, Any]]  # [{"object": "embedding", "index": i, "embedding": [...] | "base64..."}]
    usage: Usage
    raw: dict[str, Any] | None = None
