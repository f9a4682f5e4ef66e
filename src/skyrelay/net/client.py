"""A lean, pooled HTTP/1.1 client for upstream calls: asyncio Protocol + httptools.

httpx collapses under concurrency and aiohttp costs ~2.5x the CPU per request (FIELD-NOTES); a gateway sends
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

import httptools

_READ_HIGH_WATER = 256 * 1024  # pause the socket when a slow stream consumer falls this far behind
_NO_FIRST_BYTE = "no response from upstream within %gs"
_TOO_LONG = "upstream took longer than %gs"
_STALLED = "upstream sent nothing for %gs in the middle of its answer"


class ClientError(Exception):
    """Base of the transport failures; providers map these to the gateway's typed errors."""


class ConnectFailed(ClientError):
    """The origin refused or could not be reached."""


class ConnectTimeout(ClientError):
    """No connection within the connect timeout."""


class FirstByteTimeout(ClientError):
    """Connected and sent, but no response head within the first-byte timeout."""


class TotalTimeout(ClientError):
    """The whole exchange (body included) took longer than the total timeout."""


class ReadTimeout(ClientError):
    """The upstream went quiet in the middle of a body (a stalled stream) for longer than the first-byte timeout."""


class ConnectionClosed(ClientError):
    """The peer closed or reset the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool):
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(ClientError):
    """The peer answered something that is not HTTP/1.1."""


class Response:
    """A response head plus its body: whole (`body`) or as a stream (`iter_chunks`)."""

    __slots__ = ("status", "headers", "body", "_conn", "_exchange")

    def __init__(self, status: int, headers: dict[str, str], conn: "_Connection", exchange: "_Exchange"):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = b""
        self._conn = conn
        self._exchange = exchange

    async def read(self) -> bytes:
        ex = self._exchange
        if self._conn.exchange is not ex:  # released already (read before, or closed): its connection moved on
            return self.body
        if ex.complete and ex.error is None:  # the usual case: the body came with the head, no stream needed
            self.body = b"".join(ex.chunks)
            ex.chunks.clear()
            self._conn.finish_exchange(ex)
            return self.body
        chunks = [chunk async for chunk in self.iter_chunks()]
        self.body = b"".join(chunks)
        return self.body

    async def iter_chunks(self):
        """Yield body bytes as they arrive; raises ConnectionClosed/TotalTimeout if the body breaks off."""
        ex = self._exchange
        conn = self._conn
        while True:
            if ex.chunks:
                data = b"".join(ex.chunks)
                ex.chunks.clear()
                ex.buffered = 0
                conn.resume_if_paused()
                yield data
                continue
            if ex.error is not None:
                raise ex.error
            if ex.complete:
                conn.finish_exchange(ex)
                return
            if conn.exchange is not ex:
                return  # released (aclose) before the end: nothing more will arrive
            ex.waiter = asyncio.get_running_loop().create_future()
            try:
                await ex.waiter
            finally:
                ex.waiter = None

    async def aclose(self) -> None:
        """Release the connection: back to the pool when the body was read whole, else closed."""
        self._conn.finish_exchange(self._exchange)


class _Exchange:
    __slots__ = ("status", "headers", "head_future", "chunks", "buffered", "complete", "error", "waiter",
                 "keep_alive", "received_any", "last_data")

    def __init__(self, loop):
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_future: asyncio.Future = loop.create_future()
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future | None = None
        self.keep_alive = True
        self.received_any = False
        self.last_data = 0.0  # loop time of the last body bytes: the stall watchdog reads it

    def wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def fail(self, error: Exception):
        if self.complete or self.error is not None:
            return
        self.error = error
        if not self.head_future.done():
            self.head_future.set_exception(error)
            self.head_future.exception()  # mark retrieved: nobody may be waiting any more
        self.wake()


class _Connection(asyncio.Protocol):
    __slots__ = ("pool", "transport", "parser", "exchange", "closed", "reading_paused", "deadline", "used", "counted",
                 "loop")

    def __init__(self, pool: "HttpClient"):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.closed = False
        self.reading_paused = False
        self.deadline: asyncio.TimerHandle | None = None
        self.used = 0  # exchanges served, so a reused connection's stale close can be told apart
        self.counted = True  # still counted in the pool's open connections

    # --- transport events ---------------------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc):
        self.closed = True
        self.pool.forget(self)
        ex = self.exchange
        if ex is None or ex.complete:
            return
        if exc is None and ex.status and ex.error is None and _ends_at_close(ex.headers):
            # No Content-Length and not chunked: the body is whatever came before the origin's clean close
            # (llhttp would need an EOF call that httptools does not expose).
            ex.complete = True
            ex.keep_alive = False
            self._cancel_deadline()
            ex.wake()
            return
        ex.fail(ConnectionClosed("upstream closed the connection", before_response=not ex.received_any))

    def data_received(self, data: bytes):
        ex = self.exchange
        if ex is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.transport.close()
            return
        ex.received_any = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:  # we never ask for an upgrade
            ex.fail(ProtocolError(f"invalid HTTP response from upstream: {exc!r}"))
            self.transport.close()

    # --- parser callbacks ---------------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes):
        key = name.decode("latin-1").lower()
        headers = self.exchange.headers
        val = value.decode("latin-1")
        headers[key] = val if key not in headers else f"{headers[key]}, {val}"

    def on_headers_complete(self):
        ex = self.exchange
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: interim, the answer follows
            ex.headers.clear()
            return
        ex.status = status
        ex.keep_alive = self.parser.should_keep_alive()
        if not ex.head_future.done():
            ex.head_future.set_result(None)

    def on_body(self, body: bytes):
        ex = self.exchange
        ex.last_data = self.loop.time()
        ex.chunks.append(body)
        ex.buffered += len(body)
        if ex.buffered > _READ_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        ex.wake()

    def on_message_complete(self):
        ex = self.exchange
        if not ex.status:
            return  # the end of an interim response
        ex.complete = True
        ex.keep_alive = ex.keep_alive and self.parser.should_keep_alive()
        self._cancel_deadline()
        ex.wake()

    # --- used by the pool and the response ----------------------------------------------------------------------

    def resume_if_paused(self):
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def arm_deadline(self, seconds: float, make_error: type[ClientError], template: str, limit: float):
        """Fail the exchange after `seconds`; the error is built only if it fires (most never do)."""
        self._cancel_deadline()
        self.deadline = asyncio.get_running_loop().call_later(seconds, self._expire, make_error, template, limit)

    def watch_body(self, finish_by: float, stall: float, total: float) -> None:
        """While a body arrives: fail it if the upstream goes quiet for `stall` seconds or the total runs out.

        One timer, re-armed only when it fires (not per chunk): a lazy deadline over `last_data`."""
        self._cancel_deadline()
        now = self.loop.time()
        self.deadline = self.loop.call_later(max(0.0, min(stall, finish_by - now)), self._check_body,
                                             finish_by, stall, total)

    def _check_body(self, finish_by: float, stall: float, total: float) -> None:
        self.deadline = None
        ex = self.exchange
        if ex is None or ex.complete or ex.error is not None:
            return
        now = self.loop.time()
        if now >= finish_by:
            self._expire(TotalTimeout, _TOO_LONG, total)
            return
        quiet = now - ex.last_data
        if quiet >= stall and not self.reading_paused:  # paused by us for a slow reader: not the upstream's fault
            self._expire(ReadTimeout, _STALLED, stall)
            return
        wait = stall - quiet if quiet < stall else stall
        self.deadline = self.loop.call_later(max(0.0, min(wait, finish_by - now)), self._check_body,
                                             finish_by, stall, total)

    def _expire(self, make_error: type[ClientError], template: str, limit: float):
        self.deadline = None
        if self.exchange is not None:
            self.exchange.fail(make_error(template % limit))
        self.transport.abort()

    def _cancel_deadline(self):
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def finish_exchange(self, ex: _Exchange):
        """The caller is done with the response: reuse the connection if the exchange ended cleanly."""
        if ex is not self.exchange:
            return  # released before: the connection may be serving another exchange by now
        self.exchange = None
        self._cancel_deadline()
        if ex.complete and ex.keep_alive and ex.error is None and not self.closed:
            self.parser = httptools.HttpResponseParser(self)
            self.pool.release(self)
        else:
            self.closed = True
            self.transport.abort()
            self.pool.forget(self)


def _ends_at_close(headers: dict[str, str]) -> bool:
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()


class HttpClient:
    """A keep-alive connection pool to one origin (scheme://host:port)."""

    def __init__(
        self, base_url: str, *, max_connections: int = 100, connect_timeout: float = 5.0,
        first_byte_timeout: float = 60.0, total_timeout: float = 600.0, ssl_context=None,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self.ssl = (ssl_context or ssl_module.create_default_context()) if parts.scheme == "https" else None
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.total_timeout = total_timeout
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._closed = False

    # --- pool ---------------------------------------------------------------------------------------------------

    async def _acquire(self) -> tuple[_Connection, bool]:
        queued = bool(self._waiters)
        if queued:  # first come, first served: a newcomer does not overtake requests already waiting
            await self._wait_turn(front=False)
        while True:
            while self._idle:
                conn = self._idle.pop()  # LIFO: the warmest connection, and idle ones at the bottom can time out
                if not conn.closed:
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

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
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

    def release(self, conn: _Connection):
        if self._closed:
            conn.transport.close()
            return
        self._idle.append(conn)
        self._wake_waiter()

    def forget(self, conn: _Connection):
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
        for attempt in (0, 1):
            conn, reused = await self._acquire()
            try:
                return await self._exchange(conn, head + body, first_byte_timeout, total_timeout)
            except ConnectionClosed as exc:
                # A pooled connection the origin had already closed: the request never reached it, so one
                # retry on a fresh connection is safe (what every keep-alive client does).
                if reused and exc.before_response and attempt == 0:
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
        lines = [f"{method} {self.base_path}{path} HTTP/1.1", f"host: {self.host_header}", f"content-length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _exchange(self, conn: _Connection, payload: bytes, first_byte: float | None, total: float | None):
        loop = asyncio.get_running_loop()
        ex = conn.exchange = _Exchange(loop)
        conn.used += 1
        first_byte = first_byte or self.first_byte_timeout
        total = total or self.total_timeout
        # One timer at a time: first byte, then (only for bodies still arriving) what is left of the total.
        finish_by = loop.time() + total
        if first_byte < total:
            conn.arm_deadline(first_byte, FirstByteTimeout, _NO_FIRST_BYTE, first_byte)
        else:
            conn.arm_deadline(total, TotalTimeout, _TOO_LONG, total)
        try:
            conn.transport.write(payload)
            await ex.head_future
        except BaseException:
            conn.finish_exchange(ex)
            raise
        if not ex.complete:
            ex.last_data = loop.time()
            conn.watch_body(finish_by, first_byte, total)
        return Response(ex.status, ex.headers, conn, ex)

    async def aclose(self):
        self._closed = True
        while self._idle:
            self._idle.pop().transport.close()
