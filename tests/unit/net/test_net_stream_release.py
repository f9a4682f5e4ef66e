"""A StreamResponse's `release` runs once however the response ended, and a client that stops reading cannot
pin a stream forever."""

from __future__ import annotations

import asyncio
import socket

from skyrelay.net.server import StreamResponse, start_server

REQUEST = b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_release_runs_after_a_stream_is_sent():
    released = asyncio.Event()

    async def handler(request):
        async def body():
            yield b"one"
        return StreamResponse(200, body(), release=_set(released))

    server = await start_server(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(REQUEST)
    await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 3)
    await asyncio.wait_for(released.wait(), 3)
    writer.close()
    await server.close()


async def test_release_runs_for_a_stream_never_started_because_the_client_left():
    released = asyncio.Event()
    handler_started = asyncio.Event()

    async def handler(request):
        handler_started.set()
        try:
            await asyncio.sleep(0.2)  # the client leaves while the handler works (an upstream's first token)
        except asyncio.CancelledError:
            pass  # a handler may finish its work anyway and return a stream nobody will read

        async def body():
            yield b"never sent"
        return StreamResponse(200, body(), release=_set(released))

    server = await start_server(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(REQUEST)
    await asyncio.wait_for(handler_started.wait(), 3)
    writer.transport.abort()
    await asyncio.wait_for(released.wait(), 3)
    await server.close()


async def test_a_client_that_stops_reading_is_given_up_on():
    released = asyncio.Event()

    async def handler(request):
        async def body():
            while True:  # far more than socket buffers hold
                yield b"x" * 65536
                await asyncio.sleep(0)
        return StreamResponse(200, body(), release=_set(released))

    server = await start_server(handler, write_timeout=0.3)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(REQUEST)  # ...and never read
    try:
        await asyncio.wait_for(released.wait(), 5)
    finally:
        sock.close()
        await server.close()


def _set(event: asyncio.Event):
    async def release():
        event.set()
    return release


async def test_chunks_produced_in_one_go_leave_in_one_write(monkeypatch):
    """Each transport.write is a send() call: events decoded from one upstream read must not cost one each. The
    first leaves with the head at once (the time to the first token is what a client waits on)."""
    from asyncio import selector_events

    writes = []
    original = selector_events._SelectorSocketTransport.write

    def counting_write(self, data):
        writes.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(selector_events._SelectorSocketTransport, "write", counting_write)

    async def handler(request):
        async def body():
            for i in range(5):  # all available at once, as when several SSE events arrive in one read
                yield b"event %d\n" % i
            await asyncio.sleep(0.01)  # then the producer waits (for the upstream's next read)
            yield b"late\n"
        return StreamResponse(200, body())

    server = await start_server(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writes.clear()
    writer.write(REQUEST)
    data = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 3)
    assert b"event 4" in data and b"late" in data
    served = [w for w in writes if b"event" in w or b"late" in w]
    assert len(served) == 3, served  # the head and the first, the next four together, the late one with the end
    assert served[0].startswith(b"HTTP/1.1 200") and served[0].endswith(b"event 0\n\r\n"), served
    assert b"event 1" in served[1] and b"event 4" in served[1]
    writer.close()
    await server.close()


async def test_an_oversized_request_head_is_431_not_unbounded_memory():
    async def handler(request):
        raise AssertionError("a request with a 100 KB head must not reach the handler")

    server = await start_server(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /x HTTP/1.1\r\nhost: x\r\n" + b"x-filler: " + b"a" * 100_000 + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 3)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"too large" in answer
    writer.close()
    await server.close()


async def test_an_http10_client_gets_a_stream_delimited_by_the_close():
    """HTTP/1.0 has no chunked encoding: the body is sent as is and ends when the connection does."""
    async def handler(request):
        async def body():
            yield b"data: one\n\n"
            yield b"data: two\n\n"
        return StreamResponse(200, body(), [("content-type", "text/event-stream")])

    server = await start_server(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /s HTTP/1.0\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 3)  # read() returns only once the server closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower()
    assert body == b"data: one\n\ndata: two\n\n"
    writer.close()
    await server.close()
