"""OpenAI and every server that speaks its protocol (vLLM, SGLang, Ollama, llama.cpp server, TGI).

When the client spoke OpenAI too, the request body passes through with only `model` swapped (the fast path);
otherwise it is built from the canonical request. Responses and stream chunks keep the upstream's JSON (`raw`)
so the OpenAI protocol can forward them byte for byte, while the canonical fields feed usage and other protocols.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..canonical import (
    ChatChunk, ChatRequest, ChatResponse, Choice, EmbeddingRequest, EmbeddingResponse, ToolCall, ToolCallDelta, Usage,
)
from . import openai_responses
from .base import OpenedStream, Provider, as_int, error_detail, load_json
from .content import without_cache_control
from .openai_passthrough import PassThroughChunks
from .sse import SSEChunks

_OPTIONAL_FIELDS = ("temperature", "top_p", "stop", "tools", "tool_choice", "response_format")


class ChunkEvents:
    """OpenAI's stream events -> chunks, up to `data: [DONE]`. `thoughts`: read the reasoning deltas of
    OpenAI-compatible reasoning servers (vLLM, SGLang, DeepSeek: `reasoning_content`, newer vLLM `reasoning`) into
    the chunks, for a client of another protocol; a chat client gets the upstream's chunks as they came."""

    __slots__ = ("deployment", "done", "finished", "thoughts")

    def __init__(self, deployment: str, thoughts: bool = False):
        self.deployment = deployment
        self.done = False
        self.finished = False  # a chunk carried a finish_reason: the answer is whole even if [DONE] never comes
        self.thoughts = thoughts

    def decode(self, event: str | None, payload: bytes) -> tuple[ChatChunk, ...]:
        if payload == b"[DONE]":
            self.done = True
            return ()
        chunk = parse_chunk(payload, self.deployment, self.thoughts)
        if chunk.finish_reason is not None:
            self.finished = True
        return (chunk,)

    def finish(self) -> tuple[ChatChunk, ...]:
        """The body ended. Without [DONE] and without a finish_reason the stream was cut short, however cleanly
        the body ended (a chunked terminator, a close-delimited body's close): it must not pass for whole.
        Some OpenAI-compatible servers never send [DONE]; a finish_reason says their answer was complete."""
        if not self.done and not self.finished:
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' ended the stream before [DONE]", deployment=self.deployment)
        return ()


class OpenAIProvider(Provider):
    kind = "openai"
    stream_events = ChunkEvents

    def __init__(self, deployment: Any):
        super().__init__(deployment)
        self.headers = self.build_headers()
        # Serves /v1/responses from its own Responses API (the client's body forwarded), or translated to chat
        self.speaks_responses = deployment.options.get("responses", "native") == "native"
        # A reasoning server (vLLM, SGLang) shows its thoughts whether asked or not: a summary asked is honoured
        self.shows_thoughts = bool(deployment.options.get("shows_reasoning"))

    def build_headers(self) -> list[tuple[str, str]]:
        headers = [("content-type", "application/json"), ("accept", "application/json")]
        key = self.deployment.api_key
        if key:
            headers.append(("authorization", f"Bearer {key.reveal()}"))
        headers += list(self.deployment.headers.items())
        return headers

    # Subclasses (Azure) change where requests go and how they authenticate, nothing else.
    def chat_path(self) -> str:
        return "/chat/completions"

    def embeddings_path(self) -> str:
        return "/embeddings"

    def responses_path(self) -> str:
        return "/responses"

    def request_headers(self) -> list[tuple[str, str]]:
        return self.headers

    async def chat(self, req: ChatRequest) -> ChatResponse:
        if req.responses is not None and self.speaks_responses:
            body = openai_responses.native_body(req.responses, self.deployment.model, False, self.name)
            raw, data = await self.post_json_read_raw(self.responses_path(), self.request_headers(), body)
            return openai_responses.whole_response(raw, data, self.name)
        body, data = await self.post_json_read_raw(self.chat_path(), self.request_headers(), self.chat_body(req))
        # An OpenAI client gets the upstream's bytes as they came: their choices are parsed only if someone reads them.
        resp = parse_response(data, self.name, lazy=req.raw is not None)
        resp.raw_body = body
        if req.raw is None:  # a client of another protocol: the thoughts of a reasoning server, where it sent some
            read_thoughts(resp, data)
        return resp

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        if req.responses is not None and self.speaks_responses:
            body = openai_responses.native_body(req.responses, self.deployment.model, True, self.name)
            resp = await self.post_json(self.responses_path(), self.request_headers(), body)
            return resp, SSEChunks(openai_responses.ResponsesEvents(self.name))
        resp = await self.post_json(self.chat_path(), self.request_headers(), self.chat_body(req))
        if req.raw is not None:  # the client speaks OpenAI too: the stream goes on as it came, barely read
            return resp, PassThroughChunks(self.stream_events(self.name))
        return resp, SSEChunks(self.stream_events(self.name, thoughts=True))

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        if req.raw is not None:
            body = dict(req.raw)
            body["model"] = self.deployment.model
        else:
            body = {"model": self.deployment.model, "input": req.input, **req.extra}
        data = await self.post_json_read(self.embeddings_path(), self.request_headers(), body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise errors.UpstreamProtocolError(f"deployment '{self.name}' answered no embeddings", deployment=self.name)
        usage = data.get("usage") or {}
        return EmbeddingResponse(
            model=str(data.get("model") or self.deployment.model), data=data["data"],
            usage=Usage(input_tokens=as_int(usage.get("prompt_tokens"))), raw=data,
        )

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        """OpenAI's own 4xx keeps its `param` and `code`: clients branch on them (context_length_exceeded...)."""
        err = super().error_from_response(status, headers, body)
        if type(err) is errors.UpstreamClientError:
            detail = error_detail(body)
            for name in ("param", "code"):
                if isinstance(detail.get(name), str):
                    setattr(err, name, detail[name])
        return err

    def chat_body(self, req: ChatRequest) -> dict[str, Any]:
        if req.raw is not None:
            body = dict(req.raw)
        else:
            body = {"messages": req.messages, **req.extra}
            if req.max_tokens is not None:
                body["max_tokens"] = req.max_tokens
            for name in _OPTIONAL_FIELDS:
                value = getattr(req, name)
                if value is not None:
                    body[name] = value
            native = req.anthropic
            if native is not None and "cache_control" in native.hints:  # Anthropic's breakpoints: no place here
                body["messages"] = without_cache_control(req.messages)
                if req.tools:
                    body["tools"] = without_cache_control(req.tools)
        body["model"] = self.deployment.model
        if req.stream:
            body["stream"] = True
            if self.deployment.options.get("stream_usage", True):
                # Always ask for usage, whatever the client asked: the ledger needs it. The OpenAI protocol drops
                # the usage chunk again when the client did not ask for it.
                body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            else:  # a server that refuses the field altogether
                body.pop("stream_options", None)
        return body


def parse_response(data: Any, deployment: str, lazy: bool = False) -> ChatResponse:
    """The canonical answer. `lazy`: its choices are parsed when first read, for a pass-through, which forwards
    the upstream's body and itself needs only the usage."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no choices", deployment=deployment)
    return (_LazyChoices if lazy else ChatResponse)(
        id=str(data.get("id", "")), model=str(data.get("model", "")), created=as_int(data.get("created")),
        choices=None if lazy else _choices(data["choices"]), usage=parse_usage(data.get("usage")), raw=data,
    )


_CHOICES = ChatResponse.__dict__["choices"]  # the dataclass's slot, under the property below


class _LazyChoices(ChatResponse):
    """A ChatResponse whose `choices` are parsed from `raw` on first read (set: as given)."""

    __slots__ = ()

    @property
    def choices(self) -> list[Choice]:
        choices = _CHOICES.__get__(self)
        if choices is None:
            choices = _choices(self.raw["choices"])
            _CHOICES.__set__(self, choices)
        return choices

    @choices.setter
    def choices(self, value: list[Choice] | None) -> None:
        _CHOICES.__set__(self, value)


def _choices(data: list) -> list[Choice]:
    choices = []
    for i, c in enumerate(data):
        msg = c.get("message") or {}
        calls = [
            ToolCall(id=tc.get("id", ""), name=(tc.get("function") or {}).get("name", ""),
                     arguments=(tc.get("function") or {}).get("arguments", ""))
            for tc in msg.get("tool_calls") or ()
        ]
        choices.append(Choice(index=c.get("index", i), content=msg.get("content"), tool_calls=calls,
                              finish_reason=c.get("finish_reason") or "stop", refusal=msg.get("refusal")))
    return choices


def read_thoughts(resp: ChatResponse, data: dict[str, Any]) -> None:
    """The reasoning an OpenAI-compatible server shows beside the answer (vLLM, SGLang, DeepSeek:
    `message.reasoning_content`; newer vLLM: `message.reasoning`), as a canonical thought: shown, never handed
    back (those servers take no reasoning in the history)."""
    for choice, raw in zip(resp.choices, data["choices"]):
        text = _reasoning(raw.get("message") or {})
        if text:
            choice.thinking_blocks = [{"type": "thought", "thinking": text}]


def _reasoning(fields: dict[str, Any]) -> str | None:
    text = fields.get("reasoning_content")
    if text is None:
        text = fields.get("reasoning")
    return text if isinstance(text, str) and text else None


def stream_error(err: dict, deployment: str) -> errors.UpstreamError:
    """An error chunk in an OpenAI-compatible stream. One about the request (OpenAI's `invalid_request_error`,
    vLLM's and SGLang's `BadRequestError` or `code: 400`) is the client's: passed through, no verdict on the
    deployment (its `code` and `param` kept); any other is the deployment's failure."""
    said, code = err.get("message") or "unknown error", err.get("code")
    if err.get("type") in ("invalid_request_error", "BadRequestError") or code in (400, "400", 413, 422):
        status = code if isinstance(code, int) else 400
        return errors.UpstreamClientError(str(said), status=status, deployment=deployment,
                                          param=err.get("param") if isinstance(err.get("param"), str) else None,
                                          code=code if isinstance(code, str) and not code.isdigit() else None)
    return errors.UpstreamUnavailable(f"deployment '{deployment}' failed mid-stream: {said}", deployment=deployment)


def parse_chunk(payload: bytes, deployment: str, thoughts: bool = False) -> ChatChunk:
    data = load_json(payload, deployment, "sent a stream event")
    if not isinstance(data, dict):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' sent a malformed chunk", deployment=deployment)
    if "error" in data:
        raise stream_error(data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])},
                           deployment)
    usage = data.get("usage")
    choices = data.get("choices")
    if not choices:  # the usage chunk (or an empty keep-alive)
        return ChatChunk(id=_text(data.get("id")), model=_text(data.get("model")), created=as_int(data.get("created")),
                         usage=parse_usage(usage) if usage else None, raw=payload)
    c = choices[0]
    delta = c.get("delta") or {}
    calls = delta.get("tool_calls")
    content = delta.get("content")
    if content is None:  # a refusal streams as its own field: it is the answer's text for every other protocol
        content = delta.get("refusal")
    chunk = ChatChunk(
        id=_text(data.get("id")), model=_text(data.get("model")), created=as_int(data.get("created")),
        index=c.get("index", 0), role=delta.get("role"), content=content,
        tool_calls=_tool_call_deltas(calls) if calls else None, finish_reason=c.get("finish_reason"),
        usage=parse_usage(usage) if usage else None, raw=payload,
    )
    if thoughts:
        chunk.reasoning = _reasoning(delta)
    return chunk


def _tool_call_deltas(calls: list) -> list[ToolCallDelta]:
    deltas = []
    for tc in calls:
        function = tc.get("function") or {}
        deltas.append(ToolCallDelta(index=tc.get("index", 0), id=tc.get("id"), name=function.get("name"),
                                    arguments=function.get("arguments") or ""))
    return deltas


def _text(value: Any) -> str:
    return value if type(value) is str else ("" if value is None else str(value))


def parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    out = Usage(input_tokens=as_int(usage.get("prompt_tokens")), output_tokens=as_int(usage.get("completion_tokens")),
                cached_tokens=as_int(details.get("cached_tokens")))
    output_details = usage.get("completion_tokens_details")  # reasoning tokens: part of completion_tokens
    if type(output_details) is dict:
        reasoning = output_details.get("reasoning_tokens")
        if type(reasoning) is int and reasoning:  # as_int, inlined, and no store for the usual 0: every answer
            out.reasoning_tokens = reasoning
    return out
