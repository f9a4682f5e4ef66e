"""The pooled upstream client (skyrelay.net.client) against real loopback origins.

The origins are the lean server (for well-formed HTTP) or hand-written asyncio servers (for byte-level faults).
Each test runs under both event loops, asyncio and uvloop (production's), and is bounded in time (tests/support/loops.py).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import pytest

from skyrelay.net.client import (
    ConnectFailed, ConnectionClosed, ConnectTimeout, FirstByteTimeout, HttpClient, ProtocolError, SlowReaderTimeout,
    TotalTimeout,
)
from skyrelay.net.server import Request, Response, StreamResponse, start_server
from tests.support.loops import on_each_loop



# --- origins -------------------------------------------------------------------------------------------------------


class Origin:
    """The lean server as an upstream, recording each request and the client connection it came on."""

    def __init__(self, handler=None):
        self.handler = handler
        self.requests: list[Request] = []
        self.server = None

    async def handle(self, request: Request):
        self.requests.append(request)
        if self.handler is not None:
            return await self.handler(request)
        return Response(200, b"hello " + request.path.encode(), [("content-type", "text/plain")])

    @property
    def connections_seen(self) -> int:
        return len({request.client for request in self.requests})

    async def __aenter__(self) -> "Origin":
        self.server = await start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        await self.server.close(grace=0.2)

    def client(self, **options) -> HttpClient:
        return HttpClient(f"http://127.0.0.1:{self.server.port}", **options)


class RawOrigin:
    """A hand-written origin: `script(n, reader, writer)` plays the n-th connection (0-based) byte by byte."""

    def __init__(self, script):
        self.script = script
        self.connections = 0
        self.server = None

    async def _serve(self, reader, writer):
        number = self.connections
        self.connections += 1
        try:
            await self.script(number, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "RawOrigin":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    def client(self, **options) -> HttpClient:
        return HttpClient(f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}", **options)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def assert_pool(client: HttpClient, *, open: int, idle: int) -> None:
    """No connection leaked: every open one is either idle in the pool or (here: never) in use."""
    assert (client._open, len(client._idle)) == (open, idle)
    assert not client._waiters


async def settle(condition, seconds: float = 1.0) -> None:
    """Wait for a condition a callback will make true (a close, a count) without a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


# --- the pool ------------------------------------------------------------------------------------------------------


@on_each_loop
async def test_keep_alive_connection_is_reused():
    async with Origin() as origin:
        client = origin.client()
        for i in range(5):
            resp = await client.request("POST", f"/r{i}", [("content-type", "application/json")], b'{"n":1}')
            assert (resp.status, resp.body) == (200, f"hello /r{i}".encode())
            assert resp.headers["content-type"] == "text/plain"
        assert origin.connections_seen == 1 and len(origin.requests) == 5
        assert origin.requests[0].headers["host"] == f"127.0.0.1:{origin.server.port}"
        assert origin.requests[0].headers["content-length"] == "7" and origin.requests[0].body == b'{"n":1}'
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_base_path_is_prefixed():
    async with Origin() as origin:
        client = HttpClient(f"http://127.0.0.1:{origin.server.port}/v1/")
        await client.request("GET", "/models", [])
        assert origin.requests[0].path == "/v1/models"
        await client.aclose()


@on_each_loop
async def test_max_connections_is_respected_under_concurrency():
    in_flight, peak = 0, 0

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return Response(200, request.path.encode())

    async with Origin(slow) as origin:
        client = origin.client(max_connections=2)
        replies = await asyncio.gather(*(client.request("GET", f"/{i}", []) for i in range(10)))
        assert [r.body for r in replies] == [f"/{i}".encode() for i in range(10)]
        assert peak == 2 and origin.connections_seen == 2
        assert_pool(client, open=2, idle=2)
        await client.aclose()


@on_each_loop
async def test_waiters_are_served_first_come_first_served():
    """A request arriving as a connection frees up must not overtake requests already queued for one."""
    order = []
    hold = asyncio.Event()

    async def held_open():
        yield b"start"  # the head goes out with it
        await hold.wait()

    async def handler(request):
        order.append(request.path)
        if request.path == "/hold":
            return StreamResponse(200, held_open())
        return Response(200, b"ok")

    async with Origin(handler) as origin:
        client = origin.client(max_connections=1)
        holder = await client.send("GET", "/hold", [])
        waiting = [asyncio.create_task(client.request("GET", f"/{name}", [])) for name in "abc"]
        await settle(lambda: len(client._waiters) == 3)
        hold.set()
        await settle(lambda: holder._exchange.complete)
        newcomer = asyncio.create_task(client.request("GET", "/newcomer", []))  # scheduled before the wake-up
        await holder.aclose()  # frees the connection in this very step
        await asyncio.gather(newcomer, *waiting)
        assert order == ["/hold", "/a", "/b", "/c", "/newcomer"]
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_a_waiter_cancelled_as_it_is_woken_passes_its_turn_on():
    async with Origin() as origin:
        client = origin.client(max_connections=1)
        holder = await client.send("GET", "/hold", [])
        first = asyncio.create_task(client.request("GET", "/first", []))
        second = asyncio.create_task(client.request("GET", "/second", []))
        await settle(lambda: len(client._waiters) == 2)
        await holder.aclose()  # wakes `first`...
        first.cancel()  # ... which is cancelled before it runs (its caller went away in the same instant)
        assert (await second).body == b"hello /second"
        assert first.cancelled()
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_waiter_cancelled_while_queued_leaves_the_queue():
    async with Origin() as origin:
        client = origin.client(max_connections=1)
        holder = await client.send("GET", "/hold", [])
        queued = asyncio.create_task(client.request("GET", "/q", []))
        await settle(lambda: len(client._waiters) == 1)
        queued.cancel()
        await settle(lambda: not client._waiters)
        await holder.aclose()
        assert (await client.request("GET", "/next", [])).status == 200
        assert_pool(client, open=1, idle=1)
        await client.aclose()


# --- connecting ----------------------------------------------------------------------------------------------------


@on_each_loop
async def test_connect_refused_is_connect_failed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once the socket is closed
    client = HttpClient(f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectFailed) as info:
        await client.request("GET", "/", [])
    assert f"127.0.0.1:{port}" in str(info.value)
    assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_connect_timeout(monkeypatch):
    """A loopback peer always completes the handshake, so the connect itself is made to hang."""
    attempts = []

    async def never_connects(*args, **kwargs):
        attempts.append(args[1:3])
        await asyncio.Event().wait()

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", never_connects)
    client = HttpClient("http://127.0.0.1:9", connect_timeout=0.1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectTimeout):
        await client.request("GET", "/", [])
    assert 0.09 <= asyncio.get_running_loop().time() - started < 1.0
    assert attempts == [("127.0.0.1", 9)]
    assert_pool(client, open=0, idle=0)


# --- timeouts ------------------------------------------------------------------------------------------------------


@on_each_loop
async def test_first_byte_timeout_drops_the_connection_and_cancels_the_upstream_work():
    cancelled = asyncio.Event()

    async def silent(request):
        try:
            await asyncio.sleep(10)
        finally:
            cancelled.set()

    async with Origin(silent) as origin:
        client = origin.client(first_byte_timeout=0.15)
        started = asyncio.get_running_loop().time()
        with pytest.raises(FirstByteTimeout):
            await client.request("GET", "/", [])
        assert 0.14 <= asyncio.get_running_loop().time() - started < 1.0
        await cancelled.wait()  # the origin saw us go
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_per_call_first_byte_timeout_overrides_the_default():
    async def slow(request):
        await asyncio.sleep(0.2)
        return Response(200, b"late")

    async with Origin(slow) as origin:
        client = origin.client(first_byte_timeout=0.05)
        assert (await client.request("GET", "/", [], first_byte_timeout=1.0)).body == b"late"
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@pytest.mark.parametrize("first_byte", [60.0, 0.3], ids=["total-only", "first-byte-then-total"])
@on_each_loop
async def test_total_timeout_on_a_slow_body(first_byte):
    async def trickle():
        while True:
            yield b"tick "
            await asyncio.sleep(0.05)

    async def stream(request):
        return StreamResponse(200, trickle())

    async with Origin(stream) as origin:
        client = origin.client(first_byte_timeout=first_byte, total_timeout=0.4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        resp = await client.send("GET", "/", [])
        assert resp.status == 200
        received = b""
        with pytest.raises(TotalTimeout):
            async for data in resp.iter_chunks():
                received += data
        assert 0.38 <= loop.time() - started < 1.0  # counted from the send, not from the head
        assert received.startswith(b"tick tick ")
        await resp.aclose()
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_a_total_timeout_while_a_slow_reader_holds_the_body_up_is_told_apart():
    """A reader that leaves more than the high-water mark unread pauses the upstream socket; the total running out
    then is the reader's pace (a slow client downstream), not the upstream's: SlowReaderTimeout, which the
    providers map to an error charged to no deployment."""
    from skyrelay import errors
    from skyrelay.providers.base import transport_error

    async def flood():
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0)

    async def stream(request):
        return StreamResponse(200, flood())

    async with Origin(stream) as origin:
        client = origin.client(first_byte_timeout=5, total_timeout=0.4)
        resp = await client.send("GET", "/", [])
        await asyncio.sleep(0.6)  # reads nothing: the buffer fills, reading pauses, the total runs out
        with pytest.raises(SlowReaderTimeout) as caught:
            async for _ in resp.iter_chunks():
                pass
        await resp.aclose()
    mapped = transport_error(caught.value, "d")
    assert isinstance(mapped, errors.ClientTooSlow) and not mapped.cools_down and not mapped.retryable


@on_each_loop
async def test_timers_do_not_fire_on_a_reused_connection():
    """A finished exchange must leave no deadline armed that could abort the connection's next exchange."""
    async with Origin() as origin:
        client = origin.client(first_byte_timeout=0.1, total_timeout=0.15)
        await client.request("GET", "/1", [])
        await asyncio.sleep(0.25)  # past both deadlines of the first exchange
        assert_pool(client, open=1, idle=1)
        assert (await client.request("GET", "/2", [])).body == b"hello /2"
        assert origin.connections_seen == 1
        await client.aclose()


# --- the peer breaks the exchange ----------------------------------------------------------------------------------


@on_each_loop
async def test_peer_closing_mid_body_is_connection_closed_after_response():
    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with RawOrigin(script) as origin:
        client = origin.client()
        resp = await client.send("GET", "/", [])
        with pytest.raises(ConnectionClosed) as info:
            await resp.read()
        assert info.value.before_response is False
        await resp.aclose()
        assert origin.connections == 1  # a half-delivered answer is never retried
        assert_pool(client, open=0, idle=0)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), like a crashed or restarted upstream."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@on_each_loop
async def test_a_reset_right_after_the_request_on_a_reused_connection_is_reported_not_sent_again():
    """The upstream read the request, so it may be generating (and billing) it: one copy per attempt, never two."""
    seen = []

    async def script(n, reader, writer):
        seen.append((n, await read_request(reader)))
        writer.write(OK)  # keep-alive ...
        await writer.drain()
        if n == 0:
            seen.append((n, await read_request(reader)))  # ... the next request arrives ...
            reset(writer)  # ... and the upstream dies at once, within a round trip
            return
        await reader.read()

    async with RawOrigin(script) as origin:
        client = origin.client()
        await client.request("GET", "/1", [])
        with pytest.raises(ConnectionClosed) as info:
            await client.request("POST", "/2", [], b"{}")
        assert info.value.before_response is True and info.value.unsent is False
        assert [n for n, head in seen if head.startswith(b"POST")] == [0]  # sent once, not sent again
        assert origin.connections == 1
        assert_pool(client, open=0, idle=0)
        assert (await client.request("POST", "/2", [], b"{}")).body == b"ok"  # the next attempt: one more copy
        assert [n for n, head in seen if head.startswith(b"POST")] == [0, 1]
        await client.aclose()


def serve_once_then_reset(listener: socket.socket, seen: list[bytes], was_reset: threading.Event) -> None:
    """A blocking origin on its own thread: answers one request, resets that connection while it is idle, then
    answers one request on a second connection. On a thread, so the reset lands while the client's loop sleeps."""
    def read(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head

    with listener:
        first, _ = listener.accept()
        seen.append(read(first))
        first.sendall(OK)
        first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()
        was_reset.set()
        second, _ = listener.accept()
        with second:
            seen.append(read(second))
            second.sendall(OK)


@on_each_loop
async def test_a_pooled_connection_whose_write_fails_is_sent_again_on_a_fresh_one():
    """The upstream reset the idle connection before our request: the write fails, so nothing reached it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(2.0)
    seen, was_reset = [], threading.Event()
    origin = threading.Thread(target=serve_once_then_reset, args=(listener, seen, was_reset), daemon=True)
    origin.start()
    client = HttpClient(f"http://127.0.0.1:{listener.getsockname()[1]}")
    await client.request("GET", "/1", [])
    assert was_reset.wait(2.0)
    time.sleep(0.05)  # the RST is in our kernel; our loop, blocked here, has not seen it: the pooled one looks fine
    assert (await client.request("POST", "/2", [], b"{}")).body == b"ok"
    assert [head.split(b" ")[0] for head in seen] == [b"GET", b"POST"]  # the POST reached the origin once
    assert_pool(client, open=1, idle=1)
    await client.aclose()
    origin.join(2.0)


@on_each_loop
async def test_a_pooled_connection_already_closing_is_not_handed_out():
    async with Origin() as origin:
        client = origin.client()
        await client.request("GET", "/1", [])
        client._idle[-1].transport.close()  # closing, its connection_lost not run yet
        assert (await client.request("POST", "/2", [], b"{}")).body == b"hello /2"
        assert origin.connections_seen == 2 and [r.path for r in origin.requests] == ["/1", "/2"]
        await settle(lambda: client._open == 1)
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_a_connection_idle_longer_than_the_reuse_bound_is_closed_not_reused():
    """Upstreams close idle connections on their own clock (uvicorn after 5 s): ours are retired before that."""
    async with Origin() as origin:
        client = origin.client(max_idle_reuse=0.05)
        await client.request("GET", "/1", [])
        await asyncio.sleep(0.1)
        await client.request("GET", "/2", [])
        assert origin.connections_seen == 2
        await settle(lambda: len(origin.server.connections) == 1)  # the stale one was closed, not leaked
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_fresh_connection_closed_before_the_answer_is_not_retried():
    async def script(n, reader, writer):
        await read_request(reader)

    async with RawOrigin(script) as origin:
        client = origin.client()
        with pytest.raises(ConnectionClosed) as info:
            await client.request("POST", "/", [], b"{}")
        assert info.value.before_response is True
        assert origin.connections == 1  # it may have acted on the request: the caller decides
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_idle_connection_closed_by_the_peer_leaves_the_pool():
    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.02)  # then the origin's own keep-alive timeout closes it

    async with RawOrigin(script) as origin:
        client = origin.client()
        await client.request("GET", "/", [])
        await settle(lambda: client._open == 0)
        assert_pool(client, open=0, idle=0)
        assert (await client.request("GET", "/", [])).body == b"ok"
        assert origin.connections == 2
        await client.aclose()


@on_each_loop
async def test_unsolicited_bytes_on_an_idle_connection_drop_it():
    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")  # an answer nobody asked for
        await reader.read()

    async with RawOrigin(script) as origin:
        client = origin.client()
        await client.request("GET", "/", [])
        await settle(lambda: client._open == 0)
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_non_http_answer_is_a_protocol_error():
    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with RawOrigin(script) as origin:
        client = origin.client()
        with pytest.raises(ProtocolError):
            await client.request("GET", "/", [])
        assert origin.connections == 1
        await settle(lambda: client._open == 0)
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_unasked_protocol_switch_is_a_protocol_error():
    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n\x81\x00")
        await writer.drain()
        await reader.read()

    async with RawOrigin(script) as origin:
        client = origin.client()
        with pytest.raises(ProtocolError):
            await client.request("GET", "/", [])
        await settle(lambda: client._open == 0)
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_cancelled_request_drops_its_connection():
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(request):
        started.set()
        try:
            await asyncio.sleep(10)
        finally:
            cancelled.set()

    async with Origin(slow) as origin:
        client = origin.client()
        call = asyncio.create_task(client.request("GET", "/", []))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert_pool(client, open=0, idle=0)
        await cancelled.wait()


# --- response bodies -----------------------------------------------------------------------------------------------


@on_each_loop
async def test_chunked_response_body_streams_chunk_by_chunk():
    received_first = asyncio.Event()

    async def events():
        yield b"data: 1\n\n"
        await received_first.wait()  # the second exists only once the first reached the client
        yield b"data: 2\n\n"
        yield b"data: [DONE]\n\n"

    async def stream(request):
        return StreamResponse(200, events(), [("content-type", "text/event-stream")])

    async with Origin(stream) as origin:
        client = origin.client()
        resp = await client.send("POST", "/stream", [], b"{}")
        assert resp.status == 200 and resp.headers["transfer-encoding"] == "chunked"
        received = []
        async for data in resp.iter_chunks():
            received.append(data)
            received_first.set()
        assert received[0] == b"data: 1\n\n"
        assert b"".join(received) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        assert_pool(client, open=1, idle=1)  # a complete stream gives its connection back
        again = await client.request("GET", "/stream", [])  # read() joins the chunks
        assert again.body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        await client.aclose()


@on_each_loop
async def test_large_body_pauses_reading_until_the_consumer_catches_up():
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB

    async def big(request):
        return Response(200, body)

    async with Origin(big) as origin:
        client = origin.client()
        resp = await client.send("GET", "/", [])
        await asyncio.sleep(0.15)  # a consumer that does not read
        conn, exchange = resp._conn, resp._exchange
        assert conn.reading_paused
        assert 256 * 1024 < exchange.buffered < 1024 * 1024  # about one read past the high-water mark, no more
        received = bytearray()
        async for data in resp.iter_chunks():
            received += data
            await asyncio.sleep(0)
        assert bytes(received) == body
        assert not conn.reading_paused
        assert_pool(client, open=1, idle=1)
        assert (await client.request("GET", "/", [])).body == body  # and the connection is still in step
        assert origin.connections_seen == 1
        await client.aclose()


@on_each_loop
async def test_body_delimited_by_connection_close():
    """HTTP/1.0-style answers (no Content-Length, no chunking) end where the origin closes the connection."""

    async def script(n, reader, writer):
        await read_request(reader)
        version = b"1.0" if n == 0 else b"1.1"
        writer.write(b"HTTP/" + version + b" 200 OK\r\ncontent-type: text/plain\r\n\r\nhello, ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"world")

    async with RawOrigin(script) as origin:
        client = origin.client()
        for _ in range(2):
            resp = await client.request("GET", "/", [])
            assert (resp.status, resp.body) == (200, b"hello, world")
            assert_pool(client, open=0, idle=0)  # never reused: it is closed


@on_each_loop
async def test_interim_responses_are_skipped():
    """A 100 Continue or 103 Early Hints before the real answer (same packet or not) is not the answer."""

    async def script(n, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if n == 0:
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 201 Created\r\nx-final: yes\r\ncontent-length: 4\r\n\r\ndone")
        await reader.read()

    async with RawOrigin(script) as origin:
        for _ in range(2):  # one connection each: the 100 alone first, then all in one packet
            client = origin.client()
            resp = await client.request("GET", "/", [])
            assert (resp.status, resp.body) == (201, b"done")
            assert resp.headers == {"x-final": "yes", "content-length": "4"}
            await client.aclose()


@on_each_loop
async def test_aclose_before_the_body_is_read_drops_the_connection():
    async def big(request):
        return Response(200, b"y" * 1_000_000)

    async with Origin(big) as origin:
        client = origin.client()
        resp = await client.send("GET", "/", [])
        await resp.aclose()
        assert_pool(client, open=0, idle=0)  # not reused: its unread body would be read as the next answer
        async for _ in resp.iter_chunks():  # whatever had arrived, then the end: it must not wait forever
            pass
        assert len((await client.request("GET", "/", [])).body) == 1_000_000
        assert origin.connections_seen == 2
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_aclose_after_a_whole_body_keeps_the_connection():
    async with Origin() as origin:
        client = origin.client()
        resp = await client.send("GET", "/", [])
        assert await resp.read() == b"hello /"
        await resp.aclose()
        await resp.aclose()  # twice is harmless
        assert_pool(client, open=1, idle=1)
        await client.request("GET", "/", [])
        assert origin.connections_seen == 1
        await client.aclose()


@on_each_loop
async def test_a_released_response_never_touches_its_connections_next_exchange():
    more = asyncio.Event()

    async def two_parts():
        yield b"first "
        await more.wait()
        yield b"second"

    async def handler(request):
        if request.path == "/stream":
            return StreamResponse(200, two_parts())
        return Response(200, b"done")

    async with Origin(handler) as origin:
        client = origin.client(max_connections=1)
        old = await client.send("GET", "/", [])
        assert await old.read() == b"done"
        current = await client.send("GET", "/stream", [])  # the same connection, now busy with this
        assert current._conn is old._conn
        assert await old.read() == b"done"  # read again, closed again, iterated again: all harmless
        await old.aclose()
        assert [data async for data in old.iter_chunks()] == []
        more.set()
        assert await current.read() == b"first second"
        assert_pool(client, open=1, idle=1)
        await client.aclose()


@on_each_loop
async def test_client_aclose_closes_idle_connections():
    async with Origin() as origin:
        client = origin.client()
        await asyncio.gather(*(client.request("GET", "/", []) for _ in range(3)))
        assert_pool(client, open=3, idle=3)
        await client.aclose()
        await settle(lambda: client._open == 0)
        assert_pool(client, open=0, idle=0)


@on_each_loop
async def test_no_connection_leaks_after_a_mix_of_failures():
    async def mixed(request):
        if request.path == "/slow":
            await asyncio.sleep(10)
        if request.path == "/boom":
            raise RuntimeError("origin bug")
        return Response(200, b"fine")

    async with Origin(mixed) as origin:
        client = origin.client(max_connections=3, first_byte_timeout=0.1)
        outcomes = await asyncio.gather(
            *(client.request("GET", path, []) for path in ["/slow", "/boom", "/ok"] * 4), return_exceptions=True)
        kinds = [type(o).__name__ if isinstance(o, Exception) else o.status for o in outcomes]
        assert kinds == ["FirstByteTimeout", 500, 200] * 4
        await settle(lambda: client._open == len(client._idle))
        assert client._open <= 3 and not client._waiters
        await client.aclose()


def test_rejects_urls_it_cannot_serve():
    with pytest.raises(ValueError):
        HttpClient("ftp://example.com")
    with pytest.raises(ValueError):
        HttpClient("http://")
    client = HttpClient("https://user:pw@api.example.com:8443/base/")
    assert (client.host, client.port, client.base_path, client.host_header) == (
        "api.example.com", 8443, "/base", "api.example.com:8443")
    assert HttpClient("http://h").port == 80
