"""A body that stops arriving half-way fails after the stall limit (the first-byte timeout), not after the total
timeout; a slow but steady one is left alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from skyrelay.net.client import HttpClient, ReadTimeout
from skyrelay.net.server import StreamResponse, start_server


async def serve_pieces(gaps: list[float]):
    async def handler(request):
        async def body():
            for gap in gaps:
                yield b"piece\n"
                await asyncio.sleep(gap)
            yield b"end\n"
        return StreamResponse(200, body())
    return await start_server(handler)


async def read_all(client: HttpClient) -> bytes:
    resp = await client.send("GET", "/", [])
    try:
        return b"".join([c async for c in resp.iter_chunks()])
    finally:
        await resp.aclose()


async def test_a_stalled_body_fails_after_the_stall_limit():
    server = await serve_pieces([5.0])
    client = HttpClient(f"http://127.0.0.1:{server.port}", first_byte_timeout=0.2, total_timeout=30)
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        await asyncio.wait_for(read_all(client), 3)
    assert time.monotonic() - started < 1.5
    assert client._open == 0  # the stalled connection was dropped, not pooled
    await client.aclose()
    await server.close()


async def test_a_slow_but_steady_body_is_not_a_stall():
    server = await serve_pieces([0.1] * 6)  # 0.6 s in all, never quiet for 0.25 s
    client = HttpClient(f"http://127.0.0.1:{server.port}", first_byte_timeout=0.25, total_timeout=30)
    body = await asyncio.wait_for(read_all(client), 3)
    assert body.count(b"piece") == 6 and body.endswith(b"end\n")
    await client.aclose()
    await server.close()
