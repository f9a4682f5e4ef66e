"""Google's error answers: {"error": {"code", "message", "status", "details"}}, google.rpc style.

Each HTTP status has its canonical gRPC status name; `details` carry typed objects (ErrorInfo, BadRequest
field violations, RetryInfo with the delay a 429 asks for). Unknown URLs get the front end's HTML 404, as Google's
do, so a gateway that builds a wrong URL also has to cope with a body that is not JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

from skyrelay.net.server import Response

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_GEMINI_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
         "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on this "
         "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_VERTEX_MESSAGES = {
    **_GEMINI_MESSAGES,
    429: "Resource exhausted. Please try again later. Please refer to "
         "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
JSON_HEADERS = [("content-type", "application/json; charset=UTF-8"), ("x-content-type-options", "nosniff"),
                ("server", "scaffolding on HTTPServer2")]
_NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on "
    "this server.  <ins>That\u2019s all we know.</ins>\n"
)
_TOO_LARGE_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 413 (Request Entity Too Large)!!1"
    "</title>\n  <p><b>413.</b> <ins>That\u2019s an error.</ins>\n  <p>Your client issued a request that was too "
    "large.  <ins>That\u2019s all we know.</ins>\n"
)


class GoogleError(Exception):
    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None,
                 status: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def status_error(code: int, message: str | None, retry_after: float | None, vertex: bool) -> GoogleError:
    defaults = _VERTEX_MESSAGES if vertex else _GEMINI_MESSAGES
    details = None
    if retry_after is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _duration(retry_after)}]
    return GoogleError(code, message or defaults.get(code, "Unknown error."), details)


def error_info(reason: str, service: str, **metadata: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com",
            "metadata": {"service": service, **metadata}}


def render(error: GoogleError, in_array: bool = False) -> Response:
    """The JSON error answer; `in_array` for streamGenerateContent without alt=sse, which wraps it in [...]."""
    body = [error.body()] if in_array else error.body()
    return Response(error.code, orjson.dumps(body), list(JSON_HEADERS))


def not_found_page(path: str) -> Response:
    html = _NOT_FOUND_HTML.format(path=path.replace("<", "&lt;").replace(">", "&gt;"))
    return Response(404, html.encode(), [("content-type", "text/html; charset=UTF-8")])


def too_large_page() -> Response:
    return Response(413, _TOO_LARGE_HTML.encode(), [("content-type", "text/html; charset=UTF-8")])


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON: "2s", "0.5s"."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:.3f}".rstrip("0") + "s"
