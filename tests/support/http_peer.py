"""A raw HTTP peer for the server tests: every byte sent and read is the test's choice."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import orjson

from skyrelay.net.server import Request, Response, start_server


@contextlib.asynccontextmanager
async def serving(handler, **options):
    server = await start_server(handler, "127.0.0.1", 0, **options)
    try:
        yield server
    finally:
        await server.close(grace=0.5)


async def echo(request: Request) -> Response:
    """Answers with what it was sent, so each test can check what the server parsed."""
    if request.body_too_large:
        return Response(413, b'{"error":"too large"}', [("content-type", "application/json")])
    summary = {"method": request.method, "path": request.path, "query": request.query,
               "headers": request.headers, "body": request.body.decode("latin-1"), "client": request.client,
               "body_type": type(request.body).__name__}
    return Response(200, orjson.dumps(summary), [("content-type", "application/json")])


class Reply:
    __slots__ = ("status", "headers", "body", "chunk_sizes")

    def __init__(self, status, headers, body, chunk_sizes):
        self.status = status
        self.headers = headers
        self.body = body
        self.chunk_sizes = chunk_sizes  # the chunked framing as sent (None for a Content-Length body)

    def json(self):
        return orjson.loads(self.body)


class Peer:
    """An HTTP client written by hand over asyncio streams: every byte it sends and reads is the test's choice."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, **kw) -> "Peer":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, **kw)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[:2]
        assert version == "HTTP/1.1"
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                assert name.lower() not in headers, f"repeated header {name}"
                headers[name.lower()] = value.strip()
        return int(status), headers

    async def response(self) -> Reply:
        status, headers = await self.head()
        if "content-length" in headers:
            assert "transfer-encoding" not in headers
            return Reply(status, headers, await self.reader.readexactly(int(headers["content-length"])), None)
        assert headers.get("transfer-encoding") == "chunked", headers
        body, sizes = await self.chunked_body()
        return Reply(status, headers, body, sizes)

    async def chunked_body(self) -> tuple[bytes, list[int]]:
        """Decode chunked framing by hand: '<hex size>\\r\\n<data>\\r\\n' ... '0\\r\\n\\r\\n'."""
        parts, sizes = [], []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line[:-2], 16)
            sizes.append(size)
            data = await self.reader.readexactly(size + 2)
            assert data[-2:] == b"\r\n", "chunk data must end with CRLF"
            if size == 0:
                return b"".join(parts), sizes
            parts.append(data[:-2])

    async def at_eof(self) -> bytes:
        """Read until the server closes; returns what was still unread (reset counts as closed)."""
        try:
            return await self.reader.read()
        except ConnectionResetError:
            return b""

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), like a crashed client."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


def get(path: str = "/", *, version: str = "1.1", headers: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nhost: test\r\n{headers}\r\n".encode()


def post(body: bytes, path: str = "/", *, headers: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {len(body)}\r\n{headers}\r\n".encode() + body
