"""The contract between the protocol-neutral cloud (emulator/cloud.py) and one wire protocol.

A protocol module renders the fake model in one cloud's public wire format. For each request the cloud
1. asks `inspect(request)` what it is (operation and streaming, cheaply; the parsed body may ride along),
2. consults the fault plan, and answers a fault with `error_response` / a dropped connection / a delay,
3. otherwise calls `serve(request, call, ctx)`, which authenticates, validates, generates (through
   `ctx.generate`, where the cloud's capacity admits the call, queues it or refuses it) and renders.
Streams must yield exactly one protocol event (an SSE event, an event-stream frame) per chunk: `cut_stream`
faults count chunks. To add a protocol, write a class with these members and register it in PROTOCOLS
(emulator/protocols/__init__.py); see openai.py for a complete example.
"""

from __future__ import annotations

from typing import Any, Protocol

from skyrelay.net.server import Request, Response, StreamResponse

from ..capacity import Capacity, Ticket
from ..config import CloudSpec
from ..generate import ChatInput, Generation, generate_chat
from ..timing import Pacer


class Call:
    """What one request is, as far as faults care."""

    __slots__ = ("operation", "stream", "payload")

    def __init__(self, operation: str, stream: bool = False, payload: Any = None):
        self.operation = operation  # "chat" | "embeddings" | "models" | "other"
        self.stream = stream
        self.payload = payload  # protocol-private (usually the parsed body, or the parse error)


class CallContext:
    """What the cloud hands a protocol for one request."""

    __slots__ = ("number", "spec", "pacer", "content_filter", "request_key", "capacity", "deployment", "ticket")

    def __init__(self, number: int, spec: CloudSpec, pacer: Pacer, content_filter: str | None, request_key: int,
                 capacity: Capacity | None = None):
        self.number = number  # the cloud's request count, from 1
        self.spec = spec
        self.pacer = pacer  # time to first token and token pacing for this request
        self.content_filter = content_filter  # None, or "prompt" / "output" when a content_filter fault fired
        self.request_key = request_key  # a per-request deterministic number for ids
        self.capacity = capacity  # None: the cloud has no capacity limits
        self.deployment: str | None = None  # azure: the deployment, whose capacity the call uses (else the model)
        self.ticket: Ticket | None = None  # the call's hold on its capacity lane, once admitted

    async def generate(self, inp: ChatInput) -> Generation:
        """The fake model's reply, once the cloud's capacity admits the call (else `CapacityRefused` rises,
        and the cloud answers it in its protocol's format)."""
        gen = generate_chat(inp, self.spec.seed, self.spec.output_tokens,
                            content_filter=self.content_filter is not None)
        if self.capacity is not None:
            self.ticket = await self.capacity.admit(self.deployment or inp.model, inp, gen, self.pacer)
        return gen


class WireProtocol(Protocol):
    name: str

    def __init__(self, spec: CloudSpec) -> None: ...

    def base_url(self, host: str, port: int) -> str:
        """What a client of this cloud uses as its base URL / endpoint."""

    def inspect(self, request: Request) -> Call: ...

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse: ...

    def error_response(self, status: int, message: str | None = None,
                       retry_after: float | None = None) -> Response:
        """This cloud's own error answer for an injected status fault (or 413 for a too-large body)."""
