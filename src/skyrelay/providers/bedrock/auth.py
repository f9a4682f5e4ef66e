"""AWS credentials and SigV4 signing for Bedrock, sent by our own pooled client.

A deployment with an `api_key` uses it as a Bedrock API key (`Authorization: Bearer`, nothing to sign). Otherwise
credentials are resolved once, when the deployment is built: explicit keys from the configuration, else a named
profile, else botocore's default chain (environment, shared files, container or instance role). Refreshable
credentials are frozen per request, which is a cheap read unless a refresh is due.

The signature itself is computed here, to AWS's Signature Version 4 for a non-S3 service (the canonical path
percent-encoded once more, the payload's SHA-256 signed), with the day's signing key kept: botocore's signer took
~50 us per request and its import ~15 MB of every worker's memory; this one takes a few microseconds. Tests check
every signature it makes against botocore's own signer, which the emulator's front door uses too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, NamedTuple
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ProfileNotFound

from ... import errors

SERVICE = "bedrock"
ALGORITHM = "AWS4-HMAC-SHA256"


class StaticCredentials(NamedTuple):
    """Explicit keys from the configuration: frozen already (botocore's refreshable ones freeze per request)."""

    access_key: str
    secret_key: str
    token: str | None

    def __repr__(self) -> str:  # the configuration treats the key id as a secret too
        return "StaticCredentials(...)"

    def get_frozen_credentials(self) -> "StaticCredentials":
        return self


def make_signer(deployment: Any, host: str) -> "SigV4Signer | BearerAuth":
    """How this deployment's requests authenticate: its Bedrock API key, else SigV4 with AWS credentials."""
    if deployment.api_key:
        return BearerAuth(deployment.api_key)
    return SigV4Signer(resolve_credentials(deployment), deployment.region, host, deployment.name)


def resolve_credentials(deployment: Any) -> Any | None:
    """The deployment's AWS credentials, or None when the default chain finds none.

    Raises ValueError (naming the deployment, never a secret) when a configured profile does not exist.
    """
    options = deployment.options
    key_id = options.get("aws_access_key_id")
    secret = options.get("aws_secret_access_key")
    if key_id and secret:
        token = options.get("aws_session_token")
        return StaticCredentials(key_id.reveal(), secret.reveal(), token.reveal() if token else None)
    profile = options.get("aws_profile")
    try:
        import botocore.session  # noqa: PLC0415  (~0.3 s and ~15 MB to import: only a deployment without keys pays)

        session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
        return session.get_credentials()
    except ProfileNotFound:
        raise ValueError(f"deployment '{deployment.name}': AWS profile '{profile}' was not found") from None
    except BotoCoreError as exc:
        raise ValueError(f"deployment '{deployment.name}': cannot load AWS credentials: {type(exc).__name__}") from None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class SigV4Signer:
    """Signs Bedrock requests for one region and one host; holds credentials, never prints them."""

    __slots__ = ("_credentials", "region", "host", "deployment", "_paths", "_key")

    def __init__(self, credentials: Any | None, region: str, host: str, deployment: str):
        self._credentials = credentials
        self.region = region
        self.host = host  # exactly the host header our HTTP client sends
        self.deployment = deployment
        self._paths: dict[str, str] = {}  # request path -> its canonical form (a handful per deployment)
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, signing key): derived once a day

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self.region!r}, host={self.host!r})"

    def sign(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Headers for `POST path` with this exact body: the given ones plus x-amz-date, the security token and
        authorization. `path` is the full, already percent-encoded path the client puts on the request line."""
        if self._credentials is None:
            raise errors.UpstreamAuthFailed(
                f"deployment '{self.deployment}': no AWS credentials were found (explicit keys, aws_profile, "
                "environment, shared files or instance role)", deployment=self.deployment)
        try:
            frozen = self._credentials.get_frozen_credentials()
        except BotoCoreError as exc:  # a refresh (STS, instance metadata) failed
            raise errors.UpstreamAuthFailed(
                f"deployment '{self.deployment}': refreshing AWS credentials failed: {type(exc).__name__}",
                deployment=self.deployment) from None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        signed = [(name.lower(), value) for name, value in headers]
        signed.append(("x-amz-date", stamp))
        if frozen.token:
            signed.append(("x-amz-security-token", frozen.token))
        # The host is signed but not returned: the client writes that line itself.
        canonical = sorted([("host", self.host), *((n, " ".join(v.split())) for n, v in signed)])
        names = ";".join(name for name, _ in canonical)
        request = "\n".join((
            "POST", self._canonical_path(path), "",  # no query string on Bedrock's runtime calls
            "".join(f"{name}:{value}\n" for name, value in canonical), names, hashlib.sha256(body).hexdigest()))
        scope = f"{day}/{self.region}/{SERVICE}/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(frozen.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        signed.append(("authorization", f"{ALGORITHM} Credential={frozen.access_key}/{scope}, "
                                        f"SignedHeaders={names}, Signature={signature}"))
        return signed

    def _canonical_path(self, path: str) -> str:
        """AWS encodes the already encoded path once more for every service but S3 (`%3A` is signed as `%253A`)."""
        canonical = self._paths.get(path)
        if canonical is None:
            canonical = self._paths[path] = quote(path or "/", safe="/~")
        return canonical

    def _signing_key(self, secret: str, day: str) -> bytes:
        held_secret, held_day, key = self._key
        if held_day != day or held_secret != secret:  # a new day, or refreshed credentials
            key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), self.region), SERVICE), "aws4_request")
            self._key = (secret, day, key)
        return key


class BearerAuth:
    """A Bedrock API key: one static header, so there is nothing to sign per request."""

    __slots__ = ("_header",)

    def __init__(self, api_key: Any):
        self._header = ("authorization", f"Bearer {api_key.reveal()}")

    def __repr__(self) -> str:
        return "BearerAuth('***')"

    def sign(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, self._header]
