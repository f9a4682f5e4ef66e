"""Anthropic's error answers -> the gateway's typed errors, once, at the provider's edge.

Anthropic's body is {"type": "error", "error": {"type": "...", "message": "..."}}; its error type says more
than the status (529 overloaded_error is Anthropic's own), so the type decides and the status is the fallback.
"""

from __future__ import annotations

from typing import Any

import orjson

from ... import errors
from ..base import credentials_refused, error_for_status, error_message, retry_after_seconds


def anthropic_error(status: int, headers: dict[str, str], body: bytes, deployment: str) -> errors.UpstreamError:
    kind, message = _type_and_message(body)
    retry_after = retry_after_seconds(headers)
    answer = f"{status} {kind}" if kind else str(status)
    detail = f"deployment '{deployment}' answered {answer}: {message}"
    if kind == "overloaded_error" or status == 529:
        return errors.UpstreamUnavailable(detail, deployment=deployment, retry_after=retry_after)
    if kind == "rate_limit_error":
        return errors.UpstreamRateLimited(detail, deployment=deployment, retry_after=retry_after)
    if kind in ("authentication_error", "permission_error"):
        return credentials_refused(answer, deployment)
    if kind == "billing_error":  # the operator's account, not the client's request: another deployment may serve
        return errors.UpstreamUnavailable(detail, deployment=deployment)
    if kind == "timeout_error":
        return errors.UpstreamTimeout(detail, deployment=deployment)
    if kind == "request_too_large":
        return errors.UpstreamClientError(message, status=413, deployment=deployment, code="request_too_large")
    return error_for_status(status, message, deployment, retry_after)


def _type_and_message(body: bytes) -> tuple[str | None, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, error_message(body)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("type"), str):
        return err["type"], str(err.get("message") or err["type"])
    return None, error_message(body)
