"""Every error the gateway knows, on one page, grouped by where things go wrong.

Each class knows its HTTP status, its OpenAI error `type`, and whether another deployment may be tried
(`retryable`). Providers translate their cloud's failures into these once, at their edge; routing reads
`retryable` and `retry_after`; each inbound protocol renders them in its own error format.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway answers with."""

    status = 500
    type = "api_error"
    code: str | None = None
    retryable = False
    route: str | None = None  # x-skyrelay-route, when the client asked for it (x-skyrelay-debug: route)
    headers: list[tuple[str, str]] | tuple = ()  # more for the answer (a key's rate-limit headers on its 429)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


# --- the client's mistakes (never retried, never a 500) ---------------------------------------------------------


class InvalidRequest(GatewayError):
    """Malformed JSON, a wrong type, a missing field, or a feature the chosen deployment cannot honour."""

    status = 400
    type = "invalid_request_error"


class UnsupportedFeature(InvalidRequest):
    """A request feature the chosen deployment's cloud cannot honour; the message names the feature and the
    deployment. With a group's `on_unsupported: fail_over` the dispatcher tries another deployment instead."""


class AuthenticationFailed(GatewayError):
    """The API key is missing or unknown."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The key is valid but may not do this."""

    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    """Unknown model or route."""

    status = 404
    type = "not_found_error"
    code = "model_not_found"


class ResponseNotFound(NotFound):
    """No stored Response has that id (never stored, deleted, or stored with `store: false`): OpenAI's shape."""

    type = "invalid_request_error"
    code = None


class MethodNotAllowed(GatewayError):
    """The route exists but not with this method."""

    status = 405
    type = "invalid_request_error"


class Conflict(GatewayError):
    """Well formed, but the resource's state forbids it (read-only, revoked, still in use: the admin API's 409), or
    the request cannot apply to the gateway as it runs (a reload of a gateway started without a file)."""

    status = 409
    type = "invalid_request_error"


class StoreUnavailable(GatewayError):
    """The database behind the admin API cannot be reached: the call changed nothing."""

    status = 503
    type = "api_error"

    def __init__(self, exc: BaseException):
        super().__init__(f"the key store is unreachable ({type(exc).__name__}); nothing was changed, try again",
                         code="store_unavailable")


class WebSocketUnsupported(GatewayError):
    """A WebSocket handshake on a route served over HTTP only (Codex CLI tries its Responses WebSocket first):
    426, the status on which such clients fall back to HTTP at once rather than retry the handshake."""

    status = 426
    type = "invalid_request_error"
    code = "websocket_unsupported"


class PayloadTooLarge(GatewayError):
    """The request body is over the configured limit."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    """A JSON route's body was sent with another Content-Type (or none): a browser's cross-site form post."""

    status = 415
    type = "invalid_request_error"


class HttpRefused(GatewayError):
    """The HTTP layer refused the request before any route saw it (malformed, too slow, too many headers, an
    unsupported version or encoding, too many connections). Not logged: each is one client's doing."""

    type = "invalid_request_error"

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        if status in (500, 503):
            self.type = "api_error"


class RateLimited(GatewayError):
    """The gateway's own limits (or every deployment's) refuse the request for now."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


# --- an upstream deployment failed (the dispatcher decides whether to try another) -------------------------------


class UpstreamError(GatewayError):
    """A deployment failed to serve the request."""

    status = 502
    type = "api_error"
    retryable = True
    cools_down = True  # count against the deployment's health (breaker)

    def __init__(self, message: str, *, deployment: str = "", retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.deployment = deployment
        self.retry_after = retry_after


class UpstreamConnectError(UpstreamError):
    """The deployment could not be reached (refused, reset before an answer, DNS, TLS)."""


class UpstreamTimeout(UpstreamError):
    """The deployment did not connect, answer or finish in time."""

    status = 504
    type = "timeout_error"


class ClientTooSlow(UpstreamTimeout):
    """The deployment's total timeout ran out while the client was too slow to take the answer (the upstream's
    reading paused for it): the client's pace, so no verdict on the deployment and no other one tried."""

    retryable = False
    cools_down = False


class UpstreamRateLimited(UpstreamError):
    """The deployment answered 429 (or its cloud's throttling error)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamUnavailable(UpstreamError):
    """The deployment answered 5xx or its cloud's overload error."""

    status = 503


class UpstreamProtocolError(UpstreamError):
    """The deployment answered something that is not its protocol."""


class UpstreamStreamBroken(UpstreamError):
    """The upstream stream broke after bytes had reached the client: too late to fail over."""

    retryable = False


class UpstreamClientError(UpstreamError):
    """The deployment rejected the request itself (4xx): the client's mistake, passed through, never retried."""

    retryable = False
    cools_down = False

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error", **kw):
        super().__init__(message, **kw)
        self.status = status
        self.type = type


class UpstreamAuthFailed(UpstreamClientError):
    """The gateway's credentials for a deployment were refused: an operator's problem, so try elsewhere."""

    retryable = True
    cools_down = True

    def __init__(self, message: str, **kw):
        kw.setdefault("status", 401)
        kw.setdefault("type", "authentication_error")
        super().__init__(message, **kw)


class InternalError(GatewayError):
    """Something failed in the gateway itself while serving this one request (a bug, or a provider's bug on this
    input). It fails that request alone: never retried elsewhere, never charged to a deployment's health. The
    message says nothing about the cause; the traceback is in the log."""

    status = 500
    type = "api_error"

    def __init__(self, message: str = "the gateway failed to serve this request; the error is in its log", **kw):
        super().__init__(message, **kw)


class DatabaseUnavailable(GatewayError):
    """The database a report reads (the ledger) could not be reached; requests to the clouds are unaffected."""

    status = 503
    type = "api_error"
    code = "database_unavailable"


class NoDeploymentAvailable(GatewayError):
    """Every deployment of the model group failed or is cooling down."""

    status = 503
    type = "api_error"
    code = "no_deployment_available"

    def __init__(self, message: str, *, status: int = 503, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.status = status
        self.retry_after = retry_after
        if status == 429:
            self.type = "rate_limit_error"
            self.code = "rate_limit_exceeded"
