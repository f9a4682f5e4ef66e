"""Google API errors -> the gateway's typed errors, once, at the provider's edge.

Google answers `{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}`;
the canonical status string says more than the HTTP code (an invalid API key is a 400 INVALID_ARGUMENT whose
ErrorInfo reason says API_KEY_INVALID), and 429s carry their retry hint in a RetryInfo detail ("30s").
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ... import errors
from ..base import credentials_refused, sane_wait, error_for_status, error_message, retry_after_seconds

_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED",
                           "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "SERVICE_DISABLED", "CONSUMER_INVALID"})
_CLIENT_STATUSES = frozenset({"INVALID_ARGUMENT", "OUT_OF_RANGE"})
# "You do not have permission to access the File abc or it may not exist", "No such object: bucket/path".
_NAMED_FILE = re.compile(r"\bthe File\b|\bFile [\w/.-]+ (?:was )?not found|\bNo such object\b")
_SERVER_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "UNKNOWN", "ABORTED", "DATA_LOSS", "NOT_FOUND",
                              "UNIMPLEMENTED"})


def error_from_response(status: int, headers: dict[str, str], body: bytes, deployment: str) -> errors.UpstreamError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:  # streamGenerateContent without alt=sse wraps errors in an array
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return error_for_status(status, error_message(body), deployment, retry_after_seconds(headers))
    return error_from_body(error, deployment, http_status=status, headers=headers)


def error_from_body(error: dict[str, Any], deployment: str, *, http_status: int | None = None,
                    headers: dict[str, str] | None = None) -> errors.UpstreamError:
    """Map one Google `error` object (from an error answer, or an error event inside a stream)."""
    code = error.get("code")
    status = http_status or (code if isinstance(code, int) else 500)
    name = str(error.get("status") or "")
    message = str(error.get("message") or name or "unknown error")
    details = error.get("details") if isinstance(error.get("details"), list) else []
    retry_after = _retry_delay(details)
    if retry_after is None and headers:
        retry_after = retry_after_seconds(headers)
    label = f"{status} {name}" if name else str(status)
    detail = f"deployment '{deployment}' answered {label}: {message}"
    if name == "RESOURCE_EXHAUSTED" or status == 429:
        return errors.UpstreamRateLimited(detail, deployment=deployment, retry_after=retry_after)
    if name in ("PERMISSION_DENIED", "NOT_FOUND") and _NAMED_FILE.search(message):
        # A file the request names (a Files API URI, a gs:// object: expired, another project's, or missing),
        # which Google refuses as PERMISSION_DENIED or NOT_FOUND: the client's to fix, not the credentials'.
        return errors.UpstreamClientError(message, status=400, deployment=deployment)
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED") or _reason(details) in _AUTH_REASONS:
        return credentials_refused(label, deployment)
    if name == "FAILED_PRECONDITION":
        # e.g. billing not enabled, or the API not offered in the deployment's region: the operator's problem
        return errors.UpstreamUnavailable(detail, deployment=deployment)
    if name == "DEADLINE_EXCEEDED":
        return errors.UpstreamTimeout(detail, deployment=deployment)
    if name in _SERVER_STATUSES:
        return errors.UpstreamUnavailable(detail, deployment=deployment, retry_after=retry_after)
    if name in _CLIENT_STATUSES:
        return errors.UpstreamClientError(message, status=400, deployment=deployment)
    return error_for_status(status, message, deployment, retry_after)


def _retry_delay(details: list) -> float | None:
    for item in details:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return _duration(item.get("retryDelay"))
    return None


def _duration(value: Any) -> float | None:
    """A protobuf Duration in JSON: "30s", "1.5s" (or, from some clients, {"seconds": 30, "nanos": 0})."""
    try:
        if isinstance(value, str) and value.endswith("s"):
            return sane_wait(float(value[:-1]))
        if isinstance(value, dict):
            return sane_wait(float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9)
    except (TypeError, ValueError):
        pass
    return None


def _reason(details: list) -> str | None:
    for item in details:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return item.get("reason")
    return None
