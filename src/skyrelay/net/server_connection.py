"""One client connection of the HTTP server: parsing requests with httptools, queueing pipelined ones, writing
whole and streamed answers, and the refusals and timeouts that keep one client from holding the server (see
server.py for the listener that owns these connections and sweeps their timeouts)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

import httptools

from . import refusals
from .messages import AbortConnection, Request, StreamResponse, response_head
from .refusals import Refused
from .stream_writer import CoalescingWriter, finish_stream, give_up_waiting

if TYPE_CHECKING:
    from .server import HttpServer

log = logging.getLogger("skyrelay.server")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_QUEUED = 32  # pipelined requests held per connection before we stop reading and let TCP push back
_LINGER = 5.0  # seconds a refused body may keep arriving after the answer (see _close_after_answer)
_MAX_HEAD_BYTES = 64 * 1024  # request line + headers: far above any real client, far below a memory problem

# What a connection waits for, which says which timeout applies (checked by the server's sweep, not per request).
_NEW = 0  # a new connection's first byte: closed silently after the head timeout
_IDLE = 1  # between requests (or a handler is running): closed silently after the keep-alive timeout, if idle
_HEAD = 2  # the rest of a head whose first byte came: 408 after the head timeout
_BODY = 3  # more of a body: 408 when none came for the body timeout


_TARGETS: dict[bytes, tuple[str, str]] = {}  # request target -> (path, query): clients send the same few
_MAX_TARGETS = 1024  # distinct targets remembered; past it the table starts again (a scan must not grow it)


def _split_target(url: bytes) -> tuple[str, str]:
    """The path and query of a request target, parsed once per distinct target (raises the parser's error)."""
    split = _TARGETS.get(url)
    if split is None:
        parsed = httptools.parse_url(url)
        split = (parsed.path.decode("latin-1"), parsed.query.decode("latin-1") if parsed.query else "")
        if len(_TARGETS) >= _MAX_TARGETS:
            _TARGETS.clear()
        _TARGETS[url] = split
    return split


class ServerConnection(asyncio.Protocol):
    __slots__ = (
        "server", "transport", "parser", "url", "headers", "request", "queue", "task", "paused",
        "drain_waiter", "closed", "idle_since", "client", "discarding", "reading_paused", "continue_owed",
        "final_reply", "head_size", "header_lines", "repeated", "waiting", "since", "busy", "next_request",
    )

    def __init__(self, server: "HttpServer"):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.request: Request | None = None
        self.queue: deque[tuple[Request, bool]] = deque()  # pipelined requests wait their turn
        # One task serves the connection's requests, made with its first: between requests it waits on
        # `next_request` (a future costs less than a task per request). `busy`: it has requests to answer.
        self.task: asyncio.Task | None = None
        self.busy = False
        self.next_request: asyncio.Future | None = None
        self.paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0  # loop time the connection last went idle; the server's sweep closes stale ones
        self.client = ""
        self.discarding = False  # past a refused body or a parse error: bytes are read and dropped, not parsed
        self.reading_paused = False  # by us, because too many pipelined requests are waiting
        self.continue_owed = False  # a `100 Continue` that must wait until earlier answers are out
        self.final_reply: bytes | None = None  # an error to send after the answers still owed, then close
        self.head_size = 0  # bytes of the request line and headers so far
        self.header_lines = 0
        self.repeated: dict[str, list[str]] | None = None  # values of headers seen more than once, joined at the end
        self.waiting = _NEW
        self.since = server.clock  # when `waiting` began (or the last body bytes came), on the sweep's clock

    # --- transport events ---------------------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        server = self.server
        if server.draining:  # accepted just before the listener closed: close() has passed its connections by
            transport.abort()
            return
        if len(server.connections) >= server.max_connections:
            self._refuse(503, refusals.AT_CAPACITY, None)  # not counted: it is answered, then closed
            return
        server.connections.add(self)
        self.idle_since = asyncio.get_running_loop().time()

    def connection_lost(self, exc):
        self.closed = True
        self.server.connections.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client went away: stop the work (and the upstream call) it was waiting for
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_exception(ConnectionResetError("client disconnected"))

    def data_received(self, data: bytes):
        if self.discarding:
            return  # drained and dropped, so that closing later sends FIN rather than a RST that eats our answer
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._ignore_upgrade(data, exc.args[0] if exc.args else len(data))
        except httptools.HttpParserError as exc:
            if self.discarding:  # bytes after a refused body need no second answer
                return
            refused = exc.__context__
            if isinstance(refused, Refused):
                self._refuse(refused.status, refused.message, refused.path)
            else:
                status, message = refusals.from_parser_error(str(exc))
                self._refuse(status, message, self._path_so_far())

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # --- parser callbacks ---------------------------------------------------------------------------------------

    def on_message_begin(self):
        self.url = b""
        self.headers = {}
        self.head_size = 0
        self.header_lines = 0
        self.repeated = None
        self.waiting = _HEAD
        self.since = self.server.clock

    def on_url(self, url: bytes):
        self.url += url
        self.head_size += len(url)
        if self.head_size > _MAX_HEAD_BYTES:
            raise Refused(431, refusals.HEAD_TOO_LARGE)  # the path may be cut: the default format

    def on_header(self, name: bytes, value: bytes):
        self.head_size += len(name) + len(value)
        self.header_lines += 1
        if self.head_size > _MAX_HEAD_BYTES or self.header_lines > refusals.MAX_HEADER_LINES:
            too_many = self.header_lines > refusals.MAX_HEADER_LINES
            raise Refused(431, refusals.TOO_MANY_HEADERS if too_many else refusals.HEAD_TOO_LARGE,
                          self._path_so_far())
        key = name.decode("latin-1").lower()
        headers = self.headers
        if key in headers:
            self._repeat(key, value.decode("latin-1"))
        else:
            headers[key] = value.decode("latin-1")

    def _repeat(self, key: str, value: str) -> None:
        """Collected, then joined once at the end of the head: joining as they come is quadratic."""
        if self.repeated is None:
            self.repeated = {}
        values = self.repeated.get(key)
        if values is None:
            self.repeated[key] = [self.headers[key], value]
        else:
            values.append(value)

    def on_headers_complete(self):
        path, query = _split_target(self.url)
        headers = self.headers
        if self.repeated is not None:
            if "host" in self.repeated:
                raise Refused(400, refusals.HOST_REQUIRED, path)
            for key, values in self.repeated.items():
                headers[key] = ", ".join(values)
        version = self.parser.get_http_version()
        if version != "1.1":
            if version != "1.0":  # llhttp reads 2.0 and 0.9; it refuses the others itself (from_parser_error)
                raise Refused(505, refusals.UNSUPPORTED_VERSION, path)
        elif "host" not in headers:
            raise Refused(400, refusals.HOST_REQUIRED, path)
        encoding = headers.get("transfer-encoding")
        if encoding is not None and encoding.strip().lower() != "chunked":
            raise refusals.unsupported_encoding(encoding, path)  # gzip, identity, `gzip, chunked`: unreadable
        method = self.parser.get_method().decode("latin-1")
        self.request = req = Request(method, path, query, headers, self.client)
        req.http10 = version == "1.0"
        self.waiting = _BODY
        self.since = self.server.clock
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body_bytes:
            self._too_large(req)
        elif self.headers.get("expect", "").lower() == "100-continue":
            if not self.busy:
                self.transport.write(_CONTINUE)
            else:
                self.continue_owed = True  # written now, it would land inside an earlier (streaming) answer

    def on_body(self, body: bytes):
        self.since = self.server.clock
        req = self.request
        if req is None or req.body_too_large:
            return
        if not req.body:
            req.body = body
        else:  # several reads: grow a bytearray in place (bytes += bytes copies it all each time: quadratic)
            if type(req.body) is bytes:
                req.body = bytearray(req.body)
            req.body += body
        if len(req.body) > self.server.max_body_bytes:
            self._too_large(req)

    def on_message_complete(self):
        self.waiting = _IDLE
        req = self.request
        if req is None or req.body_too_large:
            return
        if self.continue_owed:
            self.continue_owed = False  # the client sent the body without waiting for it
        if type(req.body) is bytearray:
            req.body = bytes(req.body)
        self._enqueue(req, self.parser.should_keep_alive())

    # --- request handling ---------------------------------------------------------------------------------------

    def _too_large(self, req: Request):
        """Answer at once and buffer no more of the body: a client must not make us hold an unbounded one."""
        req.body_too_large = True
        req.body = b""
        self.discarding = True
        self._enqueue(req, keep_alive=False)

    def _ignore_upgrade(self, data: bytes, offset: int):
        """Upgrade (h2c from `curl --http2`, websocket) is optional for a server: answer in HTTP/1.1."""
        if self.discarding:
            return
        req = self.request
        if req is not None and (req.headers.get("content-length", "0") != "0" or "transfer-encoding" in req.headers):
            # llhttp handed this request's body to the other protocol: the queued request lacks it.
            if self.queue and self.queue[-1][0] is req:
                self.queue.pop()
            self._refuse(400, refusals.MALFORMED, req.path)
            return
        self.parser = httptools.HttpRequestParser(self)  # the old one stays stopped at the upgrade
        if offset < len(data):
            self.data_received(data[offset:])

    def _enqueue(self, req: Request, keep_alive: bool):
        queue = self.queue
        queue.append((req, keep_alive))
        if not self.busy:
            self.busy = True
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self._serve_queue())
            else:
                self.next_request.set_result(None)
        elif len(queue) > _MAX_QUEUED and not self.reading_paused:
            self.reading_paused = True  # a client pipelining faster than we answer: no unbounded queue
            self.transport.pause_reading()

    async def _serve_queue(self):
        loop = asyncio.get_running_loop()
        try:
            queue = self.queue
            while True:
                while queue and not self.closed:
                    if self.paused:
                        await self._drain()  # the client is not reading its answers: make no more until it does
                    req, keep_alive = queue.popleft()
                    if self.reading_paused and len(queue) <= _MAX_QUEUED // 2:
                        self.reading_paused = False
                        self.transport.resume_reading()
                    if not await self._serve_one(req, keep_alive):
                        self._close_after_answer()
                        return
                self.busy = False
                self.idle_since = loop.time()
                if self.continue_owed and not self.closed:
                    self.continue_owed = False
                    self.since = self.server.clock  # the body's wait starts now
                    self.transport.write(_CONTINUE)
                if self.final_reply is not None and not self.closed:
                    self._send_final_reply()
                if self.closed:
                    return
                self.next_request = loop.create_future()  # set by _enqueue; cancelled with the task (connection_lost)
                await self.next_request
        except asyncio.CancelledError:
            pass
        finally:
            self.task = None
            self.busy = False
            self.idle_since = loop.time()

    async def _serve_one(self, req: Request, keep_alive: bool) -> bool:
        """Answer one request; returns whether the connection stays open for the next."""
        try:
            resp = await self.server.handler(req)
        except AbortConnection:
            self.transport.abort()
            self.closed = True
            return False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error in handler for %s %s", req.method, req.path)
            resp = self.server.error_reply(500, refusals.INTERNAL_ERROR, req.path)
        if self.closed:
            if isinstance(resp, StreamResponse):
                await finish_stream(resp)  # never sent, but it may hold an upstream connection
            return False
        if self.server.draining:
            keep_alive = False  # the server is closing: tell the client not to send another request here
        if isinstance(resp, StreamResponse):
            framed = resp.framed and not req.http10
            if not framed:
                keep_alive = False  # HTTP/1.0 has no chunked encoding: the stream ends when the connection does
            await self._send_stream(resp, keep_alive, framed=framed)
        else:
            head = response_head(resp.status, resp.headers, f"content-length: {len(resp.body)}", keep_alive)
            self.transport.write(head + resp.body)  # one write: half the syscalls of head then body
        return keep_alive

    async def _send_stream(self, resp: StreamResponse, keep_alive: bool, framed: bool = True):
        transport = self.transport
        # The head goes out with the first chunk: one write instead of two, and a stream that fails before its
        # first chunk can still be answered as a plain error by the handler.
        encoding = "transfer-encoding: chunked" if framed else ""
        out = CoalescingWriter(transport, response_head(resp.status, resp.headers, encoding, keep_alive))
        chunks = resp.chunks
        if resp.pipe is not None:
            resp.pipe(self._direct_writer(out, framed), out.flush)
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                out.add(b"%x\r\n%b\r\n" % (len(chunk), chunk) if framed else chunk)
                if self.paused:
                    await self._drain()
            if framed:
                out.add(b"0\r\n\r\n")
            out.flush()
        except AbortConnection:
            out.flush()  # what was produced before the "crash" still leaves, as it would have from a real server
            transport.abort()
            self.closed = True
        except asyncio.CancelledError:  # the client went away (connection_lost cancels us)
            out.discard()
            self.closed = True
            raise
        except Exception:  # ConnectionError included: one from the stream is the upstream's, not our client's
            log.exception("stream for %s failed after it started", self.client)
            out.flush()
            transport.abort()  # without the final chunk the client sees a broken stream, never a false success
            self.closed = True
        finally:
            await finish_stream(resp)

    def _direct_writer(self, out: CoalescingWriter, framed: bool):
        """Body bytes written from outside this task (StreamResponse.pipe), in order with what it writes: not while
        the client's socket is full (the task then takes them, and waits for the drain) or once it is gone. They
        are held until the pipe's flush, at the end of the upstream read they came in."""
        def write(data: bytes) -> bool:
            if self.paused or self.closed or not data:
                return False
            out.hold(b"%x\r\n%b\r\n" % (len(data), data) if framed else data)
            return True
        return write

    async def _drain(self):
        loop = asyncio.get_running_loop()
        waiter = self.drain_waiter = loop.create_future()
        # A client that stops reading must not pin the stream (and its upstream call) forever.
        stall = loop.call_later(self.server.write_timeout, give_up_waiting, waiter)
        try:
            await waiter
        finally:
            stall.cancel()
            self.drain_waiter = None

    def _refuse(self, status: int, message: str, path: str | None):
        """Answer what cannot be served, after the answers still owed to earlier requests, then close."""
        if self.transport is None or self.closed or self.final_reply is not None:
            return
        self.discarding = True  # nothing after a parse error can be trusted
        resp = self.server.error_reply(status, message, path)
        head = response_head(status, resp.headers, f"content-length: {len(resp.body)}", False)
        self.final_reply = head + resp.body
        if not self.busy:
            self._send_final_reply()

    def _path_so_far(self) -> str | None:
        """The path of the request being parsed, for a refusal's format; None if its request line is unread."""
        if not self.url:
            return None
        try:
            return httptools.parse_url(self.url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            return None

    def _send_final_reply(self):
        self.transport.write(self.final_reply)
        self.final_reply = None
        self.closed = True
        self._close_after_answer()

    def _close_after_answer(self):
        transport = self.transport
        if transport.is_closing():  # aborted already
            return
        if self.discarding and transport.can_write_eof():
            # The client may still be sending what we refused. Closing with unread bytes makes the kernel send
            # RST, which destroys our answer before the client reads it: half-close instead, keep draining,
            # and close when the client does (eof_received) or after the linger time.
            if self.reading_paused:
                self.reading_paused = False
                transport.resume_reading()
            transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER, transport.close)
        else:
            transport.close()

    def phase(self) -> str:
        """What this connection is doing, in a few words (the drain's report; never the request itself)."""
        if self.transport is None or self.closed:
            return "closing"
        if self.busy:
            state = "answering" + (", the client not reading" if self.paused else "")
            return f"{state}, {len(self.queue)} more queued" if self.queue else state
        return {_NEW: "new", _IDLE: "idle", _HEAD: "reading a head", _BODY: "reading a body"}[self.waiting]

    def close_if_idle(self) -> bool:
        if not self.busy and self.transport is not None:
            self.transport.close()
            return True
        return False

    def expire(self, now: float, server: "HttpServer") -> None:
        """The sweep's check of this connection's timeouts (`since` is on the sweep's clock, so up to one period
        older than the truth: a timeout never fires early, and late by two periods at most)."""
        if self.discarding:
            return  # answered already; closing on its own
        if self.reading_paused or self.continue_owed:
            self.since = now  # the client waits for us (we stopped reading, or owe it a `100 Continue`)
            return
        waiting = self.waiting
        if waiting == _IDLE:
            if self.idle_since < now - server.keepalive_timeout:
                self.close_if_idle()
        elif waiting == _NEW:
            if self.since < now - server.head_timeout - server.sweep_period:
                self.close_if_idle()  # nothing to answer: it never said anything
        elif waiting == _HEAD:
            if self.since < now - server.head_timeout - server.sweep_period:
                self._refuse(408, refusals.HEAD_TIMEOUT, self._path_so_far())
        elif self.since < now - server.body_timeout - server.sweep_period:
            req = self.request
            self._refuse(408, refusals.BODY_TIMEOUT, req.path if req is not None else None)
