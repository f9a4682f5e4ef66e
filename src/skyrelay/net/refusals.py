"""The HTTP layer's own refusals: what the server answers before (or instead of) a handler, and why.

The server knows the status and a message; how the body looks is the application's choice (`ErrorReply`), so
a gateway can answer in the wire format of the route the request was for. Without one, an OpenAI-shaped JSON.
"""

from __future__ import annotations

from typing import Callable

import orjson

from .messages import Response

# status, message, the request's path (None when the request line was not read yet) -> the answer to send
ErrorReply = Callable[[int, str, "str | None"], Response]

MAX_HEADER_LINES = 100  # real clients send 10 to 30; a cap keeps a flood of tiny headers from costing CPU

MALFORMED = "malformed HTTP request"
HEAD_TOO_LARGE = "the request line and headers are too large"
TOO_MANY_HEADERS = f"the request has more than {MAX_HEADER_LINES} header lines"
HOST_REQUIRED = "an HTTP/1.1 request needs exactly one Host header"
HEAD_TIMEOUT = "the request line and headers did not arrive in time"
BODY_TIMEOUT = "the request body stopped arriving"
INTERNAL_ERROR = "internal server error"
AT_CAPACITY = "the server has too many open connections; try again shortly"
UNSUPPORTED_VERSION = "only HTTP/1.1 and HTTP/1.0 are supported"


class Refused(Exception):
    """Raised inside a parser callback to stop parsing and answer `status` (the parser then raises its own error,
    with this one as its __context__)."""

    def __init__(self, status: int, message: str, path: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path


def unsupported_encoding(value: str, path: str) -> Refused:
    return Refused(501, f"Transfer-Encoding {value[:100]!r} is not supported; send the body with Content-Length "
                        "or 'Transfer-Encoding: chunked'", path)


def from_parser_error(reason: str) -> tuple[int, str]:
    """What llhttp's own refusal means for the client (its messages, as httptools passes them on)."""
    if reason in ("Invalid HTTP version", "Pause on PRI/Upgrade"):  # HTTP/1.2, 3.0, ...; HTTP/2's preface
        return 505, UNSUPPORTED_VERSION
    if "Transfer-Encoding" in reason and "Content-Length" not in reason:  # `chunked, gzip`, two `chunked`
        return 501, "Transfer-Encoding is supported only as a single 'chunked'"
    return 400, MALFORMED  # Content-Length with Transfer-Encoding (a smuggling attempt) included


def default_error_reply(status: int, message: str, path: str | None) -> Response:
    """An OpenAI-shaped error JSON: what the emulator and a bare server answer."""
    kind = "api_error" if status in (500, 503) else "invalid_request_error"
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})
    return Response(status, body, [("content-type", "application/json")])
