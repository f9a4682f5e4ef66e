"""The lean HTTP server (skyrelay.net.server) over real loopback sockets, with a hand-written peer.

Each test runs under both event loops: asyncio (the tests' and the emulator's) and uvloop (production's), whose
transports differ in buffering, flow control and close behaviour. Each is bounded in time (tests/support/loops.py).
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from skyrelay.net import server_connection
from skyrelay.net.server import AbortConnection, Request, Response, StreamResponse, start_server
from tests.support.http_peer import Peer, echo, get, post, serving
from tests.support.loops import on_each_loop


# --- connection reuse and framing ----------------------------------------------------------------------------------


@on_each_loop
async def test_keep_alive_serves_several_requests_on_one_connection():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        clients = set()
        for i in range(3):
            await peer.send(post(b'{"n":%d}' % i, f"/v1/x?i={i}"))
            reply = await peer.response()
            assert reply.status == 200 and "connection" not in reply.headers
            seen = reply.json()
            assert (seen["method"], seen["path"], seen["query"], seen["body"]) == ("POST", "/v1/x", f"i={i}",
                                                                                   f'{{"n":{i}}}')
            clients.add(seen["client"])
        assert len(clients) == 1 and len(server.connections) == 1
        peer.close()


@on_each_loop
async def test_connection_close_is_honoured():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(get(headers="connection: close\r\n"))
        reply = await peer.response()
        assert reply.status == 200 and reply.headers["connection"] == "close"
        assert await peer.at_eof() == b""


@on_each_loop
async def test_http_1_0_without_keep_alive_is_answered_then_closed():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"GET /old HTTP/1.0\r\n\r\n")
        reply = await peer.response()
        assert reply.status == 200 and reply.json()["path"] == "/old"
        assert reply.headers["connection"] == "close"
        assert await peer.at_eof() == b""


@on_each_loop
async def test_repeated_headers_are_joined_and_names_lower_cased():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(get(headers="X-Tag: a\r\nx-tag: b\r\nAuthorization: Bearer k\r\n"))
        headers = (await peer.response()).json()["headers"]
        assert headers["x-tag"] == "a, b" and headers["authorization"] == "Bearer k"
        peer.close()


@on_each_loop
async def test_pipelined_requests_are_answered_in_order():
    async def slow_first(request: Request) -> Response:
        delay = {"/1": 0.15, "/2": 0.0, "/3": 0.05}[request.path]
        await asyncio.sleep(delay)
        return Response(200, request.path.encode())

    async with serving(slow_first) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/1") + post(b"two", "/2") + get("/3"))  # one write: three requests
        assert [(await peer.response()).body for _ in range(3)] == [b"/1", b"/2", b"/3"]
        peer.close()


@on_each_loop
async def test_request_split_into_one_byte_writes():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        peer.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw = post(b'{"hello":"world"}', "/v1/chat/completions?a=1&b=2",
                   headers="authorization: Bearer sk-abc\r\nx-long-header-name: " + "v" * 40 + "\r\n")
        for i in range(len(raw)):
            await peer.send(raw[i:i + 1])
            await asyncio.sleep(0)  # let each byte arrive on its own
        seen = (await peer.response()).json()
        assert seen["path"] == "/v1/chat/completions" and seen["query"] == "a=1&b=2"
        assert seen["headers"]["authorization"] == "Bearer sk-abc"
        assert seen["headers"]["x-long-header-name"] == "v" * 40
        assert seen["body"] == '{"hello":"world"}'
        peer.close()


@on_each_loop
async def test_chunked_request_body_is_assembled():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST /c HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n")
        await peer.send(b"1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n")
        seen = (await peer.response()).json()
        assert seen["body"] == "hello world!" and seen["body_type"] == "bytes"
        await peer.send(get("/after"))  # the connection is still in step
        assert (await peer.response()).json()["path"] == "/after"
        peer.close()


@on_each_loop
async def test_large_body_in_many_reads_arrives_whole_as_bytes():
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB, arriving in many reads
    async with serving(echo, max_body_bytes=4 * 1024 * 1024) as server:
        peer = await Peer.open(server.port)
        await peer.send(post(body))
        seen = (await peer.response()).json()
        assert seen["body"].encode("latin-1") == body and seen["body_type"] == "bytes"
        peer.close()


@on_each_loop
async def test_upgrade_request_is_served_as_plain_http():
    """`curl --http2 http://...` asks for h2c; a server may ignore Upgrade, and must not refuse the request."""
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/h2c", headers="connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"
                                             "http2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n") + get("/next"))
        assert (await peer.response()).json()["path"] == "/h2c"
        assert (await peer.response()).json()["path"] == "/next"
        peer.close()


# --- bounded bodies and Expect -------------------------------------------------------------------------------------


@on_each_loop
async def test_body_over_limit_by_content_length_gets_413_before_the_body_is_sent():
    async with serving(echo, max_body_bytes=1000) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 1000000000\r\n\r\n")  # and no body
        reply = await peer.response()
        assert reply.status == 413 and reply.headers["connection"] == "close"
        assert await peer.at_eof() == b""


@on_each_loop
async def test_body_at_the_limit_is_accepted():
    async with serving(echo, max_body_bytes=1000) as server:
        peer = await Peer.open(server.port)
        await peer.send(post(b"x" * 1000))
        assert (await peer.response()).status == 200
        peer.close()


@on_each_loop
async def test_client_still_sending_a_refused_body_can_read_the_413():
    """Closing with unread bytes makes the kernel send RST, which would destroy the 413 before the client reads it;
    the server must drain (and drop) the rest of the body instead."""
    async with serving(echo, max_body_bytes=1000) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 8000000\r\n\r\n")
        for _ in range(100):  # like an SDK: the whole body first, then read the answer
            await peer.send(b"x" * 80_000)
        reply = await peer.response()
        assert reply.status == 413
        assert await peer.at_eof() == b""


@on_each_loop
async def test_chunked_body_over_limit_gets_413_when_exceeded():
    seen = []

    async def record(request):
        seen.append(request)
        return await echo(request)

    async with serving(record, max_body_bytes=1000) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        await peer.send(b"190\r\n" + b"a" * 400 + b"\r\n")  # 400 bytes: under the limit, no answer yet
        await asyncio.sleep(0.05)
        assert seen == []
        await peer.send(b"2bc\r\n" + b"b" * 700 + b"\r\n")  # 1100 bytes: over
        reply = await peer.response()
        assert reply.status == 413 and seen[0].body_too_large and seen[0].body == b""
        assert await peer.at_eof() == b""


@on_each_loop
async def test_expect_100_continue():
    async with serving(echo, max_body_bytes=1000) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        assert await peer.head() == (100, {})
        await peer.send(b"hello")
        reply = await peer.response()
        assert reply.status == 200 and reply.json()["body"] == "hello"

        # Too large: the final answer instead of 100, so the client never sends the body.
        await peer.send(b"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n")
        assert (await peer.response()).status == 413
        assert await peer.at_eof() == b""


@on_each_loop
async def test_expect_100_continue_behind_a_streaming_response_does_not_corrupt_it():
    """An interim 100 owed to a pipelined request waits until the earlier response is complete."""
    more = asyncio.Event()

    async def two_parts():
        yield b"one"
        await more.wait()
        yield b"two"

    async def handler(request):
        if request.path == "/stream":
            return StreamResponse(200, two_parts())
        return await echo(request)

    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/stream"))
        assert (await peer.head())[0] == 200
        assert await peer.reader.readuntil(b"one\r\n")  # the stream is under way
        await peer.send(b"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
        await asyncio.sleep(0.05)
        more.set()
        body, sizes = await peer.chunked_body()  # must still be clean chunked framing
        assert (body, sizes) == (b"two", [3, 0])
        assert await peer.head() == (100, {})  # and only now the 100
        await peer.send(b"ok")
        second = await peer.response()
        assert second.status == 200 and second.json()["body"] == "ok"
        peer.close()


# --- failures ------------------------------------------------------------------------------------------------------


@on_each_loop
async def test_malformed_request_gets_400_and_close():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"THIS IS NOT\x00 HTTP\r\n\r\n")
        reply = await peer.response()
        assert reply.status == 400 and reply.headers["connection"] == "close"
        assert reply.json()["error"]["type"] == "invalid_request_error"
        assert await peer.at_eof() == b""


@on_each_loop
async def test_malformed_request_after_a_good_one_gets_400_after_its_answer():
    async def slow(request):
        await asyncio.sleep(0.05)
        return Response(200, b"first")

    async with serving(slow) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/ok") + b"GARBAGE\r\n\r\n")
        first = await peer.response()
        assert (first.status, first.body) == (200, b"first")
        assert (await peer.response()).status == 400
        assert await peer.at_eof() == b""


@on_each_loop
async def test_handler_exception_gives_500_json_without_a_traceback(caplog):
    async def broken(request):
        raise ValueError("secret detail sk-live-123")

    async with serving(broken) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        reply = await peer.response()
        assert reply.status == 500 and reply.headers["content-type"] == "application/json"
        error = reply.json()["error"]
        assert error["type"] == "api_error" and error["message"] == "internal server error"
        assert b"Traceback" not in reply.body and b"sk-live" not in reply.body and b"ValueError" not in reply.body
        await peer.send(get())  # the connection survives a handler's bug
        assert (await peer.response()).status == 500
        peer.close()
    assert any(record.exc_info for record in caplog.records if record.name == "skyrelay.server")


@on_each_loop
async def test_abort_connection_from_the_handler_drops_the_connection():
    async def abort(request):
        raise AbortConnection()

    async with serving(abort) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        assert await peer.at_eof() == b""  # not one byte of a response


# --- streaming responses -------------------------------------------------------------------------------------------


async def chunks_of(parts, *, delay=0.0, on_close=None):
    try:
        for part in parts:
            if delay:
                await asyncio.sleep(delay)
            yield part
    finally:
        if on_close is not None:
            on_close.set()


@on_each_loop
async def test_stream_response_chunked_framing():
    big = b"z" * 70_000

    async def stream(request):
        return StreamResponse(200, chunks_of([b"data: 1\n\n", b"", b"data: two\n\n", big]),
                              [("content-type", "text/event-stream")])

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        for _ in range(2):  # and the connection is reusable after a stream
            await peer.send(get())
            reply = await peer.response()
            assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
            assert reply.headers["transfer-encoding"] == "chunked" and "content-length" not in reply.headers
            assert reply.chunk_sizes == [9, 11, 70_000, 0]  # the empty chunk is skipped: it would end the body
            assert reply.body == b"data: 1\n\ndata: two\n\n" + big
        peer.close()


@on_each_loop
async def test_empty_stream_is_a_complete_empty_body():
    async def stream(request):
        return StreamResponse(200, chunks_of([]))

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        reply = await peer.response()
        assert reply.chunk_sizes == [0] and reply.body == b""
        peer.close()


@on_each_loop
async def test_abort_connection_inside_a_stream_cuts_it_without_the_final_chunk():
    closed = asyncio.Event()

    async def cut():
        try:
            yield b"first"
            await asyncio.sleep(0.01)
            raise AbortConnection()
        finally:
            closed.set()

    async def stream(request):
        return StreamResponse(200, cut())

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        status, _ = await peer.head()
        assert status == 200
        assert await peer.at_eof() == b"5\r\nfirst\r\n"  # no terminating 0-chunk: the client sees a broken stream
        await closed.wait()


@on_each_loop
async def test_stream_failing_after_it_started_is_cut_not_completed():
    async def failing():
        yield b"partial"
        raise RuntimeError("upstream broke")

    async def stream(request):
        return StreamResponse(200, failing())

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        await peer.head()
        assert await peer.at_eof() == b"7\r\npartial\r\n"


@on_each_loop
async def test_connection_error_from_the_stream_itself_cuts_it():
    """A ConnectionError raised by the stream is the upstream's (its socket broke), not our client's: the client's
    stream must still be cut at once, not left hanging without its final chunk."""

    async def upstream_reset():
        yield b"partial"
        raise ConnectionResetError("upstream reset")

    async def stream(request):
        return StreamResponse(200, upstream_reset())

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        await peer.head()
        assert await peer.at_eof() == b"7\r\npartial\r\n"


@on_each_loop
async def test_stream_response_not_sent_is_still_closed():
    """A handler returns a stream but the client is gone by then: the stream's resources are released."""
    closed = asyncio.Event()
    started = asyncio.Event()

    class Chunks:
        def __aiter__(self):
            return self

        async def __anext__(self):
            raise StopAsyncIteration

        async def aclose(self):
            closed.set()

    async def handler(request):
        started.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            pass  # a handler that finishes anyway (as a provider call in a shield would)
        return StreamResponse(200, Chunks())

    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        await started.wait()
        peer.close()
        await closed.wait()


# --- the client goes away ------------------------------------------------------------------------------------------


@on_each_loop
async def test_client_disconnect_mid_handler_cancels_the_handler():
    started, finished = asyncio.Event(), asyncio.Event()
    cancelled = []

    async def wait_forever(request):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(request.path)
            raise
        finally:
            finished.set()

    async with serving(wait_forever) as server:
        for path, leave in (("/fin", Peer.close), ("/rst", Peer.reset)):
            started.clear(), finished.clear()
            peer = await Peer.open(server.port)
            await peer.send(get(path))
            await started.wait()
            leave(peer)
            await finished.wait()
        assert cancelled == ["/fin", "/rst"]
        for _ in range(50):
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        assert not server.connections


@on_each_loop
async def test_client_disconnect_mid_stream_closes_the_generator():
    closed = asyncio.Event()

    async def endless():
        try:
            n = 0
            while True:
                n += 1
                yield b"data: %d\n\n" % n
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def stream(request):
        return StreamResponse(200, endless())

    async with serving(stream) as server:
        peer = await Peer.open(server.port)
        await peer.send(get())
        await peer.head()
        assert await peer.reader.readuntil(b"data: 1\n\n")  # the first event arrived
        peer.close()
        await closed.wait()


@on_each_loop
async def test_slow_reader_gets_every_byte_in_order_under_back_pressure(monkeypatch):
    """20 MB streamed to a reader that stalls, then reads slowly: nothing may be lost, duplicated or reordered."""
    pauses = []
    original = server_connection.ServerConnection.pause_writing

    def counting_pause(self):
        pauses.append(1)
        original(self)

    monkeypatch.setattr(server_connection.ServerConnection, "pause_writing", counting_pause)
    chunk_count, chunk_size = 320, 65_536
    produced = []

    def chunk(i: int) -> bytes:
        return struct.pack(">I", i) * (chunk_size // 4)

    async def numbered():
        for i in range(chunk_count):
            produced.append(i)
            yield chunk(i)

    async def stream(request):
        return StreamResponse(200, numbered())

    async with serving(stream) as server:
        peer = await Peer.open(server.port, limit=256 * 1024)
        peer.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        await peer.send(get())
        await peer.head()
        await asyncio.sleep(0.2)  # a stalled reader: the producer must stop far short of the end
        assert pauses and len(produced) < chunk_count // 4
        raw = bytearray()
        for _ in range(40):  # then a slow one
            await asyncio.sleep(0.002)
            raw += await peer.reader.read(16 * 1024)
        framed = len(b"10000\r\n\r\n") + chunk_size
        raw += await peer.reader.readexactly(chunk_count * framed + len(b"0\r\n\r\n") - len(raw))
        body, sizes = decode_chunked(bytes(raw))
        assert sizes == [chunk_size] * chunk_count + [0]
        assert body == b"".join(chunk(i) for i in range(chunk_count))
        peer.close()


def decode_chunked(raw: bytes) -> tuple[bytes, list[int]]:
    parts, sizes, at = [], [], 0
    while True:
        end = raw.index(b"\r\n", at)
        size = int(raw[at:end], 16)
        sizes.append(size)
        data = raw[end + 2:end + 2 + size]
        assert raw[end + 2 + size:end + 4 + size] == b"\r\n"
        at = end + 4 + size
        if size == 0:
            assert at == len(raw)
            return b"".join(parts), sizes
        parts.append(data)


@on_each_loop
async def test_idle_connection_is_closed_after_keepalive_timeout():
    async def slow(request):
        await asyncio.sleep(0.4)  # longer than the timeout: a busy connection is never idle
        return Response(200, b"done")

    async with serving(slow, keepalive_timeout=0.2) as server:
        loop = asyncio.get_running_loop()
        peer = await Peer.open(server.port)
        await peer.send(get())
        assert (await peer.response()).body == b"done"
        answered = loop.time()
        assert await peer.at_eof() == b""
        idle_for = loop.time() - answered
        assert 0.15 <= idle_for < 1.0


@on_each_loop
async def test_graceful_close_lets_an_in_flight_request_finish():
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(0.3)
        return Response(200, b"finished")

    server = await start_server(slow, "127.0.0.1", 0)
    busy = await Peer.open(server.port)
    idle = await Peer.open(server.port)
    await busy.send(get())
    await started.wait()
    closing = asyncio.create_task(server.close(grace=2.0))
    assert await idle.at_eof() == b""  # an idle connection is closed at once
    reply = await busy.response()
    assert (reply.status, reply.body) == (200, b"finished")
    assert reply.headers.get("connection") == "close"  # the client knows not to send another request
    assert await busy.at_eof() == b""
    await closing
    with pytest.raises(OSError):
        await Peer.open(server.port)  # no longer listening


@on_each_loop
async def test_a_connection_accepted_while_the_server_closes_is_dropped():
    """The loop may hand over a connection it accepted just before the listener closed, after close() has gone
    through the open ones: it would be served, and never closed, by a server that is gone."""
    async with serving(echo) as server:
        server.draining = True  # as close() sets it first
        peer = await Peer.open(server.port)
        await peer.send(get())
        assert await peer.at_eof() == b""
        assert not server.connections
        server.draining = False


@on_each_loop
async def test_graceful_close_aborts_what_outlives_the_grace():
    cancelled = asyncio.Event()

    async def stuck(request):
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    server = await start_server(stuck, "127.0.0.1", 0)
    peer = await Peer.open(server.port)
    await peer.send(get())
    await asyncio.sleep(0.05)
    await server.close(grace=0.1)
    await cancelled.wait()
    assert await peer.at_eof() == b""


@on_each_loop
async def test_pipelining_flood_is_bounded_and_answered_in_order():
    """A client that pipelines without reading must not make the server queue requests without limit."""
    release = asyncio.Event()

    async def gated(request):
        await release.wait()
        return Response(200, request.path.encode())

    async with serving(gated) as server:
        peer = await Peer.open(server.port)
        count, batch = 2000, 50
        for start in range(0, count, batch):  # in separate writes, so the server can stop reading in between
            peer.writer.write(b"".join(get(f"/{i}") for i in range(start, start + batch)))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        (conn,) = server.connections
        assert len(conn.queue) < 200
        release.set()
        for i in range(count):
            assert (await peer.response()).body == f"/{i}".encode()
        peer.close()


@on_each_loop
async def test_upgrade_request_with_a_body_is_refused():
    """llhttp hands the body of an Upgrade request to the other protocol: serving it bodiless would be wrong."""
    seen = []

    async def record(request):
        seen.append(request)
        return await echo(request)

    async with serving(record) as server:
        peer = await Peer.open(server.port)
        await peer.send(post(b"{}", headers="connection: Upgrade\r\nupgrade: h2c\r\n"))
        assert (await peer.response()).status == 400
        assert await peer.at_eof() == b""
    assert seen == []
