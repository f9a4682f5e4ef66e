"""The Redis the distributed tests talk to (127.0.0.1:6379, started by .ci/services), and a TCP relay in front
of it that a test can cut and restore, to play an outage without touching the shared server."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not redis_reachable(),
                                 reason=f"Redis is not running at {REDIS_HOST}:{REDIS_PORT} (.ci/services starts it)")


def fresh_prefix() -> str:
    """A key prefix of this test's own, so parallel tests and runs never share a counter."""
    return f"skyrelay-test:{os.getpid()}:{os.urandom(4).hex()}:"


async def delete_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class RedisRelay:
    """Forwards a local port to Redis; `cut()` closes the port and every relayed connection, `restore()` reopens
    the same port."""

    def __init__(self):
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader, writer) -> None:
        # A connection accepted just before a cut must not outlive it: uvloop's wait_closed waits for every one.
        server = self._server
        try:
            up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        except OSError:
            writer.transport.abort()
            return
        if not server.is_serving():
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
