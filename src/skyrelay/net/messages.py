"""What the HTTP server hands a handler and what a handler hands back; the response head, written once."""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

REASONS = {
    100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "body_too_large", "client", "http10", "id",
                 "principal", "context", "error")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], client: str):
        self.method = method
        self.path = path  # still percent-encoded, as on the wire
        self.query = query
        self.headers = headers  # lower-case names; repeated headers joined with ", "
        self.body = b""
        self.body_too_large = False  # set when the body passed the limit: answer 413, the connection then closes
        self.client = client
        self.http10 = False  # an HTTP/1.0 client: no chunked encoding, so streams are delimited by closing
        self.id = ""  # the request id the application gives it (skyrelay: the x-request-id it answers with)
        self.principal = None  # who the application authenticated it as (skyrelay: the key's Principal)
        self.context: Any = None  # the application's record of it, once it has one (skyrelay: RequestContext)
        self.error: Any = None  # the error the application answered it with, if any (skyrelay: a GatewayError)


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []


class StreamResponse:
    """A response whose body is produced chunk by chunk (SSE, event streams); sent with chunked encoding, unless
    `framed` is false: then the body is close-delimited (no content-length, not chunked) and ends when the server
    closes the connection, as HTTP/1.0 servers and some proxies answer."""

    __slots__ = ("status", "headers", "chunks", "release", "framed", "pipe")

    def __init__(self, status: int, chunks: AsyncIterator[bytes], headers: list[tuple[str, str]] | None = None,
                 release: Callable[[], Awaitable[None]] | None = None,
                 pipe: Callable[[Callable[[bytes], bool], Callable[[], None]], None] | None = None):
        self.status = status
        self.chunks = chunks
        self.headers = headers if headers is not None else []
        # Awaited once the response is over, however it ended: sent, failed, or dropped before its first chunk
        # (when closing an un-started generator would run none of its cleanup).
        self.release = release
        self.framed = True
        # Given the server's writer of body bytes (it returns False when it cannot take them now) and what sends
        # what it took, when some of `chunks` may be written straight from where they arrive instead
        # (CommittedStream.pipe): only for chunks the handler would have passed on unchanged.
        self.pipe = pipe


class AbortConnection(Exception):
    """Raised by a handler (or its stream) to drop the TCP connection at once, like a crashed server would."""


Handler = Callable[[Request], Awaitable["Response | StreamResponse"]]


def response_head(status: int, headers: list[tuple[str, str]], extra: str, keep_alive: bool) -> bytes:
    """The status line and `headers`, each written as `name: value`: an entry's value may carry further lines the
    gateway rendered itself, CRLF-joined (the rate-limit block, governance/headers.py), never a client's or an
    upstream's text."""
    parts = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n"]
    for name, value in headers:  # the pieces joined once: fewer instructions than a string formatted per header
        parts += (name, ": ", value, "\r\n")
    if extra:
        parts += (extra, "\r\n")
    if not keep_alive:
        parts.append("connection: close\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


_STATUS_LINES = {status: f"HTTP/1.1 {status} {reason}\r\n" for status, reason in REASONS.items()}  # made once
