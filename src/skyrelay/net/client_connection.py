"""One keep-alive connection to an upstream and the exchange running on it: parsing the answer with httptools,
buffering or streaming its body, and the deadlines (first byte, stall, total) that bound it."""

from __future__ import annotations

import asyncio
import logging

import httptools

from .client_errors import ClientError, ConnectionClosed, ProtocolError, ReadTimeout, SlowReaderTimeout, TotalTimeout

log = logging.getLogger("skyrelay.net")

_READ_HIGH_WATER = 256 * 1024  # pause the socket when a slow stream consumer falls this far behind

# Timeout messages, formatted only when a deadline fires.
NO_FIRST_BYTE = "no response from upstream within %gs"
TOO_LONG = "upstream took longer than %gs"
STALLED = "upstream sent nothing for %gs in the middle of its answer"


class Response:
    """A response head plus its body: whole (`body`) or as a stream (`iter_chunks`)."""

    __slots__ = ("status", "headers", "body", "_conn", "_exchange")

    def __init__(self, status: int, headers: dict[str, str], conn: "PooledConnection", exchange: "Exchange"):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = b""
        self._conn = conn
        self._exchange = exchange

    async def read(self) -> bytes:
        ex = self._exchange
        if self._conn.exchange is not ex:  # released already (read before, or closed): its connection moved on
            return self.body
        body = self.arrived_body()
        if body is not None:
            return body
        chunks = [chunk async for chunk in self.iter_chunks()]
        self.body = b"".join(chunks)
        return self.body

    def arrived_body(self) -> bytes | None:
        """The whole body when it came with the head (the usual case: no await needed), the connection then
        released; None when more is to come, or the exchange failed or was released (read() handles those)."""
        ex = self._exchange
        if not ex.complete or ex.error is not None or self._conn.exchange is not ex:
            return None
        self.body = b"".join(ex.chunks)
        ex.chunks.clear()
        self._conn.finish_exchange(ex)
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

    def pipe(self, sink, flush) -> None:
        """From now on, offer the body's bytes to `sink` as they arrive whenever the reader (iter_chunks) is
        waiting with nothing buffered; what it takes (it returns True) never reaches the reader. `flush` is
        called after each upstream read the sink took something of (so a read's events leave together)."""
        ex = self._exchange
        if self._conn.exchange is ex:
            ex.sink, ex.sink_flush = sink, flush

    async def aclose(self) -> None:
        """Release the connection: back to the pool when the body was read whole, else closed."""
        self._conn.finish_exchange(self._exchange)


class Exchange:
    __slots__ = ("status", "headers", "head_future", "chunks", "buffered", "complete", "error", "waiter",
                 "keep_alive", "received_any", "last_data", "finish_by", "sink", "sink_flush", "sunk")

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
        self.finish_by = 0.0  # loop time the whole exchange must end by (its total timeout)
        # Takes body bytes straight from the parser while the stream's reader waits for them (Response.pipe):
        # returns False for bytes it does not take, which are then buffered for the reader as usual.
        self.sink = None
        self.sink_flush = None  # called once a read's bytes are all parsed, when the sink took some of them
        self.sunk = False

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


class PooledConnection(asyncio.Protocol):
    __slots__ = ("pool", "transport", "parser", "exchange", "closed", "reading_paused", "deadline", "counted",
                 "loop", "idle_since")

    def __init__(self, pool: "HttpClient"):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.closed = False
        self.reading_paused = False
        self.deadline: asyncio.TimerHandle | None = None
        self.counted = True  # still counted in the pool's open connections
        self.idle_since = 0.0  # loop time it went back to the pool: the pool stops reusing it when too old

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
            # (llhttp would need an EOF call that httptools does not expose). Complete at the HTTP level only: a
            # stream cut short this way is caught by its decoder's finish() (no [DONE], no message_stop).
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
        if ex.sunk:  # what the sink took of this read leaves in one write, now
            ex.sunk = False
            ex.sink_flush()

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
        waiter = ex.waiter
        # Piped: while the reader waits with nothing buffered (so nothing is overtaken), the sink may take it.
        if ex.sink is not None and waiter is not None and not ex.chunks and not waiter.done() and self._sunk(body):
            ex.sunk = True
            return
        ex.chunks.append(body)
        ex.buffered += len(body)
        if ex.buffered > _READ_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        if waiter is not None and not waiter.done():  # ex.wake(), inlined: a chunked body calls this once per piece
            waiter.set_result(None)

    def _sunk(self, body: bytes) -> bool:
        try:
            return self.exchange.sink(body)
        except Exception:  # noqa: BLE001 - a broken sink must not break the answer: the reader gets it instead
            log.exception("stream pipe failed; the stream goes on through its reader")
            self.exchange.sink = None
            return False

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
        self.deadline = self.loop.call_later(seconds, self._expire, make_error, template, limit)

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
        if now >= finish_by:  # paused for a slow reader now: its pace held the body up, not the upstream
            self._expire(SlowReaderTimeout if self.reading_paused else TotalTimeout, TOO_LONG, total)
            return
        quiet = now - ex.last_data
        if quiet >= stall and not self.reading_paused:  # paused by us for a slow reader: not the upstream's fault
            self._expire(ReadTimeout, STALLED, stall)
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

    def finish_exchange(self, ex: Exchange):
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
