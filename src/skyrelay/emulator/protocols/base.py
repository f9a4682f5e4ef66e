"""The contract between the protocol-neutral cloud (emulator/cloud.py) and one wire protocol.

A protocol module renders the fake model in one cloud's public wire format. For each request the cloud
1. asks `inspect(request)` what it is (operation and streaming, cheaply; the parsed body may ride along),
2. consults the fault plan, and answers a fault with `error_response` / a dropped connection / a delay,
3. otherwise calls `serve(request, call, ctx)`, which authenticates, validates, generates and renders.
Streams must yield exactly one protocol event (an SSE event, an event-stream frame) per chunk: `cut_stream`
faults count chunks. To add a protocol, write a class with these members and register it in PROTOCOLS
(emulator/protocols/__init__.py); see openai.py for a complete example.
"""

from __future__ import annotations

from typing import Any, Protocol

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec
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

    __slots__ = ("number", "spec", "pacer", "content_filter", "request_key")

    def __init__(self, number: int, spec: CloudSpec, pacer: Pacer, content_filter: str | None, request_key: int):
        self.number = number  # the cloud's request count, from 1
        self.spec = spec
        self.pacer = pacer  # time to first token and token pacing for this request
        self.content_filter = content_filter  # None, or "prompt" / "output" when a content_filter fault fired
        self.request_key = request_key  # a per-request deterministic number for ids


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
