"""A lean HTTP/1.1 server: asyncio Protocol + httptools, no framework.

Measured (docs/performance.md) at roughly half the CPU per request of uvicorn + raw ASGI, which matters on a gateway
where every request pays it. It does only what a JSON API and SSE need: keep-alive, pipelining (bounded),
bounded bodies (refused ones drained, so the 413 is not lost to a RST), `Expect: 100-continue`, whole responses
in one write, chunked streaming with back-pressure, and cancelling the handler when the client goes away (so an
abandoned request cancels its upstream call). `Upgrade` is ignored: the answer is plain HTTP/1.1.

It also refuses what it cannot serve safely, before any handler runs (refusals.py has the statuses and
messages): a head or body that arrives too slowly (408), too many connections (503), too many or too large
headers (431), a version other than 1.0/1.1 (505), a Transfer-Encoding other than chunked (501), and an
HTTP/1.1 request without exactly one Host (400). The application renders those answers (`error_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import os

from . import refusals
from .messages import AbortConnection, Handler, Request, Response, StreamResponse
from .refusals import ErrorReply
from .server_connection import ServerConnection

__all__ = ["AbortConnection", "CannotListen", "Handler", "HttpServer", "Request", "Response", "StreamResponse", "start_server"]

log = logging.getLogger("skyrelay.server")
_DRAIN_REPORT_S = 1.0  # a drain still waiting after this long says for what
_SWEEP_PERIOD = 1.0  # at most, seconds between the timeout sweeps: the head and body timeouts' granularity


class CannotListen(OSError):
    """The address could not be bound (in use, not this host's, privileged): one line an operator can act on."""

    def __init__(self, host: str, port: int, cause: OSError):
        reason = os.strerror(cause.errno).lower() if cause.errno else str(cause)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(cause.errno, f"cannot listen on {where}: {reason}")


class HttpServer:
    """A listening server; `port` is the bound port (useful with port 0)."""

    def __init__(self, handler: Handler, *, max_body_bytes: int, keepalive_timeout: float,
                 write_timeout: float = 60.0, head_timeout: float = 10.0, body_timeout: float = 30.0,
                 max_connections: int = 10_000, error_reply: ErrorReply | None = None):
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.write_timeout = write_timeout  # how long a response may wait for a client that does not read
        self.head_timeout = head_timeout  # from a head's first byte to its end (and a new connection's first byte)
        self.body_timeout = body_timeout  # between two pieces of a request body
        self.max_connections = max_connections  # above it, a new connection is answered 503 and closed
        self.error_reply = error_reply or refusals.default_error_reply
        # One timer for all connections instead of one re-armed per request: the timeouts need no precision.
        self.sweep_period = min(_SWEEP_PERIOD, max(0.01, min(keepalive_timeout, head_timeout, body_timeout) / 4))
        self.clock = 0.0  # the loop's time at the last sweep: what connections stamp their phases with
        self.connections: set[ServerConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self.host = ""
        self.port = 0
        self.draining = False  # closing: answers say `connection: close`
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> "HttpServer":
        """`reuse_port`: several processes listen on one port (SO_REUSEPORT) and the kernel spreads connections."""
        loop = asyncio.get_running_loop()
        self.draining = False
        try:
            self._server = await loop.create_server(lambda: ServerConnection(self), host, port, backlog=2048,
                                                    reuse_port=reuse_port or None)
        except OSError as exc:
            raise CannotListen(host, port, exc) from None
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        self.clock = loop.time()
        self._schedule_sweep()
        return self

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(self.sweep_period, self._sweep)

    def _sweep(self) -> None:
        """Advance the clock; close idle connections past the keep-alive timeout, answer slow requests 408."""
        self.clock = now = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            conn.expire(now, self)
        self._schedule_sweep()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish for up to `grace` seconds."""
        if self._server is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.draining = True
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        report_at = loop.time() + _DRAIN_REPORT_S
        while self.connections and loop.time() < deadline:
            for conn in list(self.connections):
                conn.close_if_idle()
            await asyncio.sleep(0.02)
            if report_at and self.connections and loop.time() >= report_at:
                report_at = 0.0  # once: which connections the drain waits for, and what they are doing
                log.warning("draining: %d connection(s) still answering (%s)", len(self.connections),
                            ", ".join(sorted(conn.phase() for conn in self.connections)))
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await self._server.wait_closed()
        self._server = None


async def start_server(
    handler: Handler, host: str = "127.0.0.1", port: int = 0, *,
    max_body_bytes: int = 32 * 1024 * 1024, keepalive_timeout: float = 75.0, reuse_port: bool = False, **options,
) -> HttpServer:
    """Options: write_timeout, head_timeout, body_timeout, max_connections, error_reply (see HttpServer)."""
    return await HttpServer(handler, max_body_bytes=max_body_bytes, keepalive_timeout=keepalive_timeout,
                            **options).start(host, port, reuse_port=reuse_port)
