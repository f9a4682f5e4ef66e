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
