"""One emulated cloud: an HTTP server speaking one wire protocol, with faults, stats and an admin API.

The cloud is protocol-neutral: it counts requests, applies the fault plan (errors, hangs, resets, cut streams,
slowness, content filtering), times the replies, and leaves parsing and rendering to its protocol.

Runtime control (tests, chaos drills), in Python or over HTTP on the cloud's own port:
    cloud.set_faults([...])   PUT    /_emulator/faults   (a JSON list)
    cloud.clear_faults()      DELETE /_emulator/faults
    cloud.faults              GET    /_emulator/faults
    cloud.stats               GET    /_emulator/stats    (DELETE resets it)
    cloud.recent_requests     GET    /_emulator/requests (the last requests, secrets redacted)
    cloud.set_capacity({...}) PUT    /_emulator/capacity (quota, concurrency, ...: see capacity_config.py)
    cloud.clear_capacity()    DELETE /_emulator/capacity (no limits)
    cloud.capacity_state      GET    /_emulator/capacity (the settings, and counters: served, throttled, cached)
    await cloud.stop() / await cloud.start()  -- the cloud dies and comes back on the same port
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections import deque
from typing import Any, AsyncIterator

import orjson

from skyrelay.net.server import AbortConnection, HttpServer, Request, Response, StreamResponse, start_server

from . import capacity_wire
from .capacity import Capacity, CapacityRefused, Ticket
from .capacity_config import CapacityConfigError, CapacityPlan, check_capacity_body, parse_capacity
from .config import CloudSpec
from .faults import Fault, FaultConfigError, FaultPlan, parse_faults
from .protocols import PROTOCOLS, Call, CallContext
from .timing import Pacer, Timing

_ADMIN = "/_emulator/"
_RECENT = 64
_SECRET_WORDS = ("authorization", "key", "token", "secret", "signature", "cookie", "credential")
_SECRET_QUERY = re.compile(r"((?:^|&)[^=&]*(?:key|token|secret|signature|credential)[^=&]*)=[^&]*", re.IGNORECASE)


class Stats:
    """Counters of what a cloud saw; kept across stop/start."""

    __slots__ = ("requests", "in_flight", "by_path", "by_status", "faults")

    def __init__(self):
        self.requests = 0
        self.in_flight = 0
        self.by_path: dict[str, int] = {}
        self.by_status: dict[str, int] = {}  # "200", "429", ... plus "reset", "hang", "cut_stream", "client_gone"
        self.faults: dict[str, int] = {}  # fault kind (or "status_<code>") -> times fired

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "in_flight": self.in_flight, "by_path": dict(self.by_path),
                "by_status": dict(self.by_status), "faults": dict(self.faults)}


class EmulatedCloud:
    def __init__(self, spec: CloudSpec):
        if spec.protocol not in PROTOCOLS:
            raise ValueError(f"unknown emulator protocol {spec.protocol!r}; known: {sorted(PROTOCOLS)}")
        self.spec = spec
        self.name = spec.name
        self.protocol = PROTOCOLS[spec.protocol](spec)
        self.timing = Timing(spec.ttft_ms, spec.tokens_per_second, spec.jitter)
        self.plan = FaultPlan(spec.parsed_faults(), spec.seed)
        self.capacity = self._capacity(spec.capacity_plan())
        self.recent_requests: deque[dict[str, Any]] = deque(maxlen=_RECENT)
        self._stats = Stats()
        self._server: HttpServer | None = None
        self._port = spec.port

    # --- lifecycle ------------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """For openai: http://host:port/v1; for azure: the endpoint (http://host:port)."""
        return self.protocol.base_url(self.spec.host, self._port)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> "EmulatedCloud":
        """Listen (again); after a stop the cloud comes back on the port it had."""
        if self._server is None:
            self._server = await start_server(self.handle, self.spec.host, self._port,
                                              max_body_bytes=self.spec.max_body_bytes)
            self._port = self._server.port
        return self

    async def stop(self) -> None:
        """Die at once: stop listening and drop every connection, in-flight requests included."""
        server, self._server = self._server, None
        if server is not None:
            await server.close(grace=0)

    async def __aenter__(self) -> "EmulatedCloud":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- runtime control ------------------------------------------------------------------------------------------

    def set_faults(self, faults: list[Any]) -> None:
        """Replace the fault plan; its request numbers start again from 1."""
        self.plan = FaultPlan(parse_faults(faults), self.spec.seed)

    def clear_faults(self) -> None:
        self.plan = FaultPlan([], self.spec.seed)

    @property
    def faults(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.plan.faults]

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.to_dict()

    def reset_stats(self) -> None:
        self._stats = Stats()
        self.recent_requests.clear()
        self.capacity.reset_counters()

    def set_capacity(self, settings: dict[str, Any] | None) -> None:
        """Replace the capacity settings; every bucket, queue, cache and counter starts afresh (requests in
        flight finish on the lanes they hold)."""
        check_capacity_body(settings)
        self.capacity = self._capacity(parse_capacity(settings))

    def clear_capacity(self) -> None:
        self.set_capacity(None)

    @property
    def capacity_state(self) -> dict[str, Any]:
        return {"settings": self.capacity.plan.source, "counters": self.capacity.counters()}

    def _capacity(self, plan: CapacityPlan) -> Capacity:
        most = self.spec.output_tokens if isinstance(self.spec.output_tokens, int) else self.spec.output_tokens[1]
        return Capacity(plan, self.spec.protocol, most)

    # --- serving --------------------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.path.startswith(_ADMIN):
            return self._admin(request)
        stats = self._stats
        stats.requests += 1
        stats.count(stats.by_path, f"{request.method} {request.path}")
        if request.body_too_large:
            stats.count(stats.by_status, "413")
            return self.protocol.error_response(413)
        call = self.protocol.inspect(request)
        self._remember(request, call)
        fault = self.plan.next_request(call.operation, call.stream)
        if fault is not None:
            stats.count(stats.faults, f"status_{fault.status}" if fault.kind == "status" else fault.kind)
        key = _request_key(self.spec.seed, self.name, stats.requests)
        ctx = CallContext(stats.requests, self.spec, Pacer(self.timing, random.Random(key)),
                          fault.target if fault is not None and fault.kind == "content_filter" else None, key,
                          self.capacity if self.capacity.enabled else None)
        stats.in_flight += 1
        outcome = "client_gone"
        try:
            try:
                response = await self._answer(request, call, ctx, fault)
            except CapacityRefused as refused:
                response = capacity_wire.refusal(self.protocol, self.spec.protocol, refused)
            if ctx.ticket is not None:
                response = self._hold_until_done(response, ctx.ticket)
            outcome = str(response.status)
            return response
        except AbortConnection:
            outcome = "reset"
            raise
        finally:
            if ctx.ticket is not None and not ctx.ticket.holds_stream:
                ctx.ticket.release()
            stats.in_flight -= 1
            stats.count(stats.by_status, outcome)

    def _hold_until_done(self, response: Response | StreamResponse, ticket: Ticket) -> Response | StreamResponse:
        """Add the rate-limit headers; a stream keeps its serving slot until it is over."""
        extra = capacity_wire.success_headers(self.spec.protocol, ticket.quota)
        if extra:
            response.headers = capacity_wire.merge_headers(response.headers, extra)
        if isinstance(response, StreamResponse):
            ticket.holds_stream = True
            previous = response.release

            async def release() -> None:
                ticket.release()
                if previous is not None:
                    await previous()

            response.release = release
        return response

    async def _answer(self, request: Request, call: Call, ctx: CallContext,
                      fault: Fault | None) -> Response | StreamResponse:
        if fault is None or fault.kind == "content_filter":
            return await self.protocol.serve(request, call, ctx)
        kind = fault.kind
        if kind == "status":
            return self.protocol.error_response(fault.status, fault.message, fault.retry_after)
        if kind == "reset":
            raise AbortConnection()
        if kind == "hang":
            if fault.seconds is None:
                await asyncio.Event().wait()  # until the client goes away (or the cloud stops): both cancel us
            await asyncio.sleep(fault.seconds)
        elif kind == "slow":
            await asyncio.sleep(fault.extra_ms / 1000.0)
        response = await self.protocol.serve(request, call, ctx)
        if kind == "cut_stream" and isinstance(response, StreamResponse) and response.status == 200:
            response.chunks = _cut_after(response.chunks, fault.after_chunks, fault.ending != "reset")
            if fault.ending == "close":
                response.framed = False
        return response

    def _remember(self, request: Request, call: Call) -> None:
        headers = {k: ("<redacted>" if any(w in k for w in _SECRET_WORDS) else v) for k, v in request.headers.items()}
        body: Any = call.payload if isinstance(call.payload, (dict, list)) else request.body[:2048].decode(
            "utf-8", "replace")
        query = _SECRET_QUERY.sub(r"\1=<redacted>", request.query)  # Gemini clients may send ?key=<api key>
        self.recent_requests.append({"method": request.method, "path": request.path, "query": query,
                                     "headers": headers, "body": body, "operation": call.operation})

    # --- admin API ------------------------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_emulator/stats"):
            return _json(200, self.stats)
        if route == ("DELETE", "/_emulator/stats"):
            self.reset_stats()
            return _json(200, self.stats)
        if route == ("GET", "/_emulator/faults"):
            return _json(200, self.faults)
        if route == ("DELETE", "/_emulator/faults"):
            self.clear_faults()
            return _json(200, self.faults)
        if route == ("PUT", "/_emulator/faults"):
            try:
                self.set_faults(orjson.loads(request.body or b"null"))
            except (orjson.JSONDecodeError, FaultConfigError) as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, self.faults)
        if route == ("GET", "/_emulator/capacity"):
            return _json(200, self.capacity_state)
        if route == ("DELETE", "/_emulator/capacity"):
            self.clear_capacity()
            return _json(200, self.capacity_state)
        if route == ("PUT", "/_emulator/capacity"):
            try:
                self.set_capacity(orjson.loads(request.body or b"null"))
            except (orjson.JSONDecodeError, CapacityConfigError) as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, self.capacity_state)
        if route == ("GET", "/_emulator/requests"):
            return _json(200, list(self.recent_requests))
        return _json(404, {"error": f"no admin route {request.method} {request.path}"})


async def start_cloud(spec: CloudSpec) -> EmulatedCloud:
    """Build a cloud from its spec and start listening (port 0: the OS picks; see `.port` / `.base_url`)."""
    return await EmulatedCloud(spec).start()


def _json(status: int, obj: Any) -> Response:
    return Response(status, orjson.dumps(obj), [("content-type", "application/json")])


def _request_key(seed: int, name: str, number: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{number}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


async def _cut_after(chunks: AsyncIterator[bytes], after: int, clean: bool) -> AsyncIterator[bytes]:
    """Pass `after` chunks, then drop the connection (or, `clean`, end the body as if it were complete); never
    let the stream's last chunk through, so even a stream shorter than `after` ends short of its end."""
    iterator = chunks.__aiter__()
    try:
        current = await anext(iterator, None)
        sent = 0
        while current is not None:
            following = await anext(iterator, None)
            if sent >= after or following is None:
                if clean:
                    return
                raise AbortConnection()
            yield current
            sent += 1
            current = following
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
