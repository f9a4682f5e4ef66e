"""Bedrock's failures -> the gateway's typed errors, in one table shared by HTTP answers and stream exceptions.

An HTTP error names its type in `x-amzn-errortype: ThrottlingException:http://...` (or in the body's `__type`,
`...#ThrottlingException`) with a JSON body `{"message": ...}` (sometimes `Message`). A stream carries the same
types as exception events, spelled with a lower-case first letter (`throttlingException`).
"""

from __future__ import annotations

from typing import Any, Callable

import orjson

from ... import errors
from ..base import credentials_refused, error_for_status, error_message, retry_after_seconds

_ErrorFactory = Callable[[str, str, "float | None"], errors.UpstreamError]


def _rate_limited(detail: str, deployment: str, retry_after: float | None) -> errors.UpstreamError:
    return errors.UpstreamRateLimited(detail, deployment=deployment, retry_after=retry_after)


def _unavailable(detail: str, deployment: str, retry_after: float | None) -> errors.UpstreamError:
    return errors.UpstreamUnavailable(detail, deployment=deployment, retry_after=retry_after)


def _timeout(detail: str, deployment: str, retry_after: float | None) -> errors.UpstreamError:
    return errors.UpstreamTimeout(detail, deployment=deployment)


def _auth(detail: str, deployment: str, retry_after: float | None) -> errors.UpstreamError:
    # AWS's message may quote the canonical request it expected (signed headers, a session token): left out.
    answered = detail.split(" answered ", 1)[-1].split(":", 1)[0]
    return credentials_refused(answered, deployment)


# Lower-cased error type -> what it means for routing.
_BY_TYPE: dict[str, _ErrorFactory] = {
    "throttlingexception": _rate_limited,
    "toomanyrequestsexception": _rate_limited,
    "servicequotaexceededexception": _rate_limited,  # this account's quota on this deployment: try another
    "accessdeniedexception": _auth,
    "unrecognizedclientexception": _auth,
    "invalidsignatureexception": _auth,
    "incompletesignatureexception": _auth,
    "missingauthenticationtokenexception": _auth,
    "expiredtokenexception": _auth,
    "resourcenotfoundexception": _unavailable,  # the model is not enabled in this region/account: config
    "modelnotreadyexception": _unavailable,
    "serviceunavailableexception": _unavailable,
    "internalserverexception": _unavailable,
    "modelerrorexception": _unavailable,
    "modelstreamerrorexception": _unavailable,
    "modeltimeoutexception": _timeout,
}


def error_for_type(error_type: str, message: str, deployment: str, *, status: int | None = None,
                   retry_after: float | None = None) -> errors.UpstreamError:
    """The typed error for a Bedrock error type; unknown types fall back to the HTTP status (else 502)."""
    name = error_type.lower()
    if name == "validationexception":
        # The request itself is wrong: the client's mistake, in Bedrock's own words, never retried.
        return errors.UpstreamClientError(message, status=400, deployment=deployment)
    factory = _BY_TYPE.get(name)
    if factory is not None:
        label = error_type[:1].upper() + error_type[1:]
        return factory(f"deployment '{deployment}' answered {label}: {message}", deployment, retry_after)
    if status is not None:
        return error_for_status(status, message, deployment, retry_after)
    return errors.UpstreamUnavailable(f"deployment '{deployment}' failed: {error_type or 'error'}: {message}",
                                      deployment=deployment)


def error_from_http(status: int, headers: dict[str, str], body: bytes, deployment: str) -> errors.UpstreamError:
    """An HTTP error answer from Bedrock."""
    error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0] or _type_from_body(body)
    return error_for_type(error_type, error_message(body), deployment, status=status,
                          retry_after=retry_after_seconds(headers))


def error_from_event(headers: dict[str, Any], payload: bytes, deployment: str) -> errors.UpstreamError:
    """An exception (or error) message inside an event stream."""
    if headers.get(":message-type") == "error":  # the transport's own failure: code and message in headers
        return error_for_type(str(headers.get(":error-code", "")), str(headers.get(":error-message", "")),
                              deployment)
    return error_for_type(str(headers.get(":exception-type", "")), error_message(payload), deployment)


def _type_from_body(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    kind = data.get("__type") if isinstance(data, dict) else None
    return kind.rsplit("#", 1)[-1] if isinstance(kind, str) else ""
