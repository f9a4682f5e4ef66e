"""A lean, pooled HTTP/1.1 client for upstream calls: asyncio Protocol + httptools.

httpx collapses under concurrency and aiohttp costs ~2.5x the CPU per request (docs/performance.md); a gateway sends
one request shape over and over to a few origins, so a small keep-alive pool per origin is all it needs.
Timeouts are deadlines armed with `call_later` (cheaper than `asyncio.timeout`), by phase: connect, first byte
(the status line and headers), stall (the same limit, between pieces of a body still arriving), total (the whole
exchange, streamed body included).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from urllib.parse import urlsplit

from .client_connection import NO_FIRST_BYTE, TOO_LONG, Exchange, PooledConnection, Response
from .client_errors import (  # re-exported: callers catch them as client.ConnectFailed, ...
    ClientError, ConnectFailed, ConnectionClosed, ConnectTimeout, FirstByteTimeout, ProtocolError, ReadTimeout,
    SlowReaderTimeout, TotalTimeout,
)

# Seconds a pooled connection may sit idle and still be handed out. Upstreams close idle keep-alive connections
# on their own clock (uvicorn, behind vLLM and SGLang: 5 s; nginx: 75 s); a close that crosses our request
# cannot be told from a crash after the upstream began work, so it fails the attempt. Staying under the
# shortest common timeout makes that crossing rare instead of routine.
MAX_IDLE_REUSE = 4.0

__all__ = [
    "ClientError", "ConnectFailed", "ConnectionClosed", "ConnectTimeout", "FirstByteTimeout", "HttpClient",
    "ProtocolError", "ReadTimeout", "Response", "SlowReaderTimeout", "TotalTimeout",
]


class HttpClient:
    """A keep-alive connection pool to one origin (scheme://host:port)."""

    def __init__(
        self, base_url: str, *, max_connections: int = 100, connect_timeout: float = 5.0,
        first_byte_timeout: float = 60.0, total_timeout: float = 600.0, ssl_context=None,
        max_idle_reuse: float = MAX_IDLE_REUSE,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        # Per (method, path): the headers list a head was last made with, and that head encoded up to its length.
        # A provider passes the same list on every request, so its head is formatted and encoded once.
        self._heads: dict[tuple[str, str], tuple[list[tuple[str, str]], bytes]] = {}
        self.ssl = (ssl_context or ssl_module.create_default_context()) if parts.scheme == "https" else None
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.total_timeout = total_timeout
        self.max_idle_reuse = max_idle_reuse
        self._idle: deque[PooledConnection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._closed = False

    # --- pool ---------------------------------------------------------------------------------------------------

    async def _acquire(self) -> tuple[PooledConnection, bool]:
        queued = bool(self._waiters)
        if queued:  # first come, first served: a newcomer does not overtake requests already waiting
            await self._wait_turn(front=False)
        while True:
            if self._idle:
                conn = self._reusable()
                if conn is not None:
                    return conn, True
            if self._open < self.max_connections:
                break
            await self._wait_turn(front=queued)  # woken, but another took the slot: stay at the head
            queued = True
        self._open += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._open -= 1
            self._wake_waiter()
            raise

    def _reusable(self) -> PooledConnection | None:
        """The warmest idle connection (LIFO, so idle ones at the bottom can time out), dropping the ones that
        are closing or have been idle too long: below a stale one, every other is staler."""
        idle = self._idle
        fresh_since = idle[-1].loop.time() - self.max_idle_reuse
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since >= fresh_since and not conn.transport.is_closing():
                return conn
            self._discard(conn)
        return None

    def _discard(self, conn: PooledConnection) -> None:
        """Close an idle connection now and free its slot for the caller (connection_lost finds it forgotten)."""
        conn.closed = True
        if conn.counted:
            conn.counted = False
            self._open -= 1
        conn.transport.close()

    async def _connect(self) -> PooledConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: PooledConnection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} within {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        return conn

    async def _wait_turn(self, front: bool):
        waiter = asyncio.get_running_loop().create_future()
        if front:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._wake_waiter()  # woken and cancelled at once: pass the turn on, or it is lost
            raise

    def release(self, conn: PooledConnection):
        if self._closed:
            conn.transport.close()
            return
        conn.idle_since = conn.loop.time()
        self._idle.append(conn)
        self._wake_waiter()

    def forget(self, conn: PooledConnection):
        if conn.counted:
            conn.counted = False
            self._open -= 1
        try:
            self._idle.remove(conn)
        except ValueError:
            pass
        self._wake_waiter()

    def _wake_waiter(self):
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- requests -----------------------------------------------------------------------------------------------

    async def send(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", *,
        first_byte_timeout: float | None = None, total_timeout: float | None = None,
    ) -> Response:
        """Send a request and return once the response head arrived; read the body from the Response."""
        head = self._head(method, path, headers, len(body))
        first_byte = first_byte_timeout or self.first_byte_timeout
        total = total_timeout or self.total_timeout
        for attempt in (0, 1):
            # The usual case, a warm idle connection and nobody queued, is taken without a coroutine of its own.
            conn = self._reusable() if self._idle and not self._waiters else None
            reused = True
            if conn is None:
                conn, reused = await self._acquire()
            try:
                ex = self._start_exchange(conn, head + body, first_byte, total)
                try:
                    await ex.head_future
                except BaseException:
                    conn.finish_exchange(ex)
                    raise
                return self._answered(conn, ex, first_byte, total)
            except ConnectionClosed as exc:
                # Sent again only when the upstream provably never got it (the pooled connection's write failed):
                # a close after the bytes left may follow real work upstream (a billed generation), so it is
                # reported, and the dispatcher's failover decides.
                if reused and exc.unsent and attempt == 0:
                    continue
                raise
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", **kw):
        """Send a request and read the whole body."""
        resp = await self.send(method, path, headers, body, **kw)
        try:
            await resp.read()
        finally:
            await resp.aclose()
        return resp

    def _head(self, method: str, path: str, headers: list[tuple[str, str]], length: int) -> bytes:
        made = self._heads.get((method, path))
        if made is None or made[0] is not headers:  # lists are never changed once sent: the same one, the same head
            lines = [f"{method} {self.base_path}{path} HTTP/1.1", f"host: {self.host_header}"]
            lines += [f"{k}: {v}" for k, v in headers]
            head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")
            made = self._heads[(method, path)] = (headers, head)
        return b"%b%d\r\n\r\n" % (made[1], length)

    def _start_exchange(self, conn: PooledConnection, payload: bytes, first_byte: float, total: float) -> Exchange:
        """Send the request on `conn`; the caller awaits the exchange's `head_future`, then calls `_answered`.
        Plain functions around one await, not a coroutine: the request path pays for every coroutine layer."""
        loop = conn.loop
        ex = conn.exchange = Exchange(loop)
        # One timer at a time: first byte, then (only for bodies still arriving) what is left of the total.
        ex.finish_by = loop.time() + total
        if first_byte < total:
            conn.arm_deadline(first_byte, FirstByteTimeout, NO_FIRST_BYTE, first_byte)
        else:
            conn.arm_deadline(total, TotalTimeout, TOO_LONG, total)
        try:
            transport = conn.transport
            transport.write(payload)
            if transport.is_closing():
                # The write itself failed (both loops try the socket at once and close it on an error): nothing
                # of this request left. A peer's close arriving later is reported by connection_lost instead.
                raise ConnectionClosed("upstream closed the connection before the request was sent",
                                       before_response=True, unsent=True)
        except BaseException:
            conn.finish_exchange(ex)
            raise
        return ex

    @staticmethod
    def _answered(conn: PooledConnection, ex: Exchange, first_byte: float, total: float) -> Response:
        """The head is in: the response, its body watched (stall, total) while it still arrives."""
        if not ex.complete:
            ex.last_data = conn.loop.time()
            conn.watch_body(ex.finish_by, first_byte, total)
        return Response(ex.status, ex.headers, conn, ex)

    async def aclose(self):
        self._closed = True
        while self._idle:
            self._idle.pop().transport.close()
