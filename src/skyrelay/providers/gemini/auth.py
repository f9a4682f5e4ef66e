"""Vertex AI bearer tokens: a static token, a service-account key file, or application default credentials.

google-auth is optional: it is imported only when a deployment needs it, and its absence is a configuration
error raised when the provider is built, not a surprise on the first request. Refreshing a token calls
Google's token endpoint (blocking I/O in google-auth), so it runs in a thread, once for all concurrent
requests, a few minutes before the token expires.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from ... import errors

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_REFRESH_MARGIN = 300.0  # seconds before expiry at which a token counts as stale
_DEFAULT_LIFETIME = 3000.0  # when google-auth gives no expiry


class StaticToken:
    """A bearer token given in the configuration (api_key); it never changes."""

    __slots__ = ("_header",)

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    async def header(self) -> tuple[str, str]:
        return self._header

    def __repr__(self) -> str:
        return "StaticToken('***')"


class GoogleCredentialsToken:
    """Tokens from google-auth credentials, refreshed in a thread before they expire."""

    __slots__ = ("_credentials", "_deployment", "_header", "_stale_at", "_lock")

    def __init__(self, credentials: Any, deployment: str):
        self._credentials = credentials
        self._deployment = deployment
        self._header: tuple[str, str] | None = None
        self._stale_at = 0.0
        self._lock = asyncio.Lock()

    async def header(self) -> tuple[str, str]:
        if self._header is not None and time.time() < self._stale_at:
            return self._header
        async with self._lock:  # one refresh serves every request that waited for it
            if self._header is None or time.time() >= self._stale_at:
                await self._refresh()
        return self._header

    async def _refresh(self) -> None:
        from google.auth import exceptions as google_errors
        from google.auth.transport.requests import Request

        try:
            await asyncio.to_thread(self._credentials.refresh, Request())
        except google_errors.TransportError as exc:
            raise errors.UpstreamConnectError(
                f"deployment '{self._deployment}': cannot reach Google's token endpoint ({type(exc).__name__})",
                deployment=self._deployment) from None
        except google_errors.GoogleAuthError as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise errors.UpstreamAuthFailed(
                f"deployment '{self._deployment}': Google refused to issue an access token: {reason}",
                deployment=self._deployment) from None
        expiry = getattr(self._credentials, "expiry", None)  # a naive UTC datetime in google-auth
        if expiry is not None:
            lifetime = expiry.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()
        else:
            lifetime = _DEFAULT_LIFETIME
        self._stale_at = time.time() + max(0.0, lifetime - _REFRESH_MARGIN)
        self._header = ("authorization", f"Bearer {self._credentials.token}")

    def __repr__(self) -> str:
        return "GoogleCredentialsToken('***')"


def token_source(deployment: Any) -> StaticToken | GoogleCredentialsToken:
    """Pick the credential of a vertex deployment: api_key, then credentials_file, then application defaults.

    Raises ValueError (a configuration error) when google-auth is needed but missing or the key file is bad.
    """
    if deployment.api_key:
        return StaticToken(deployment.api_key.reveal())
    path = deployment.options.get("credentials_file")
    what = f"credentials_file {path!r}" if path else "application default credentials"
    try:
        from google.oauth2 import service_account
        import google.auth
        import google.auth.transport.requests  # noqa: F401 - refresh needs it (and the requests package)
    except ImportError:
        raise ValueError(
            f"deployment '{deployment.name}' ({deployment.kind}) uses {what}, which needs the google-auth package: "
            "pip install 'google-auth[requests]', or give a static token as api_key") from None
    try:
        if path:
            credentials = service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
        else:
            credentials, _ = google.auth.default(scopes=SCOPES)
    except (OSError, ValueError, google.auth.exceptions.GoogleAuthError) as exc:
        raise ValueError(f"deployment '{deployment.name}' ({deployment.kind}): cannot load {what}: "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return GoogleCredentialsToken(credentials, deployment.name)
