"""AWS credentials and SigV4 signing for Bedrock, done by botocore, sent by our own pooled client.

A deployment with an `api_key` uses it as a Bedrock API key (`Authorization: Bearer`, nothing to sign). Otherwise
credentials are resolved once, when the deployment is built: explicit keys from the configuration, else a named
profile, else botocore's default chain (environment, shared files, container or instance role). Refreshable
credentials are frozen per request, which is a cheap read unless a refresh is due.
"""

from __future__ import annotations

from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ProfileNotFound

from ... import errors

SERVICE = "bedrock"


def make_signer(deployment: Any, host: str, origin: str) -> "SigV4Signer | BearerAuth":
    """How this deployment's requests authenticate: its Bedrock API key, else SigV4 with AWS credentials."""
    if deployment.api_key:
        return BearerAuth(deployment.api_key)
    return SigV4Signer(resolve_credentials(deployment), deployment.region, host, origin, deployment.name)


def resolve_credentials(deployment: Any) -> Any | None:
    """The deployment's AWS credentials, or None when the default chain finds none.

    Raises ValueError (naming the deployment, never a secret) when a configured profile does not exist.
    """
    options = deployment.options
    key_id = options.get("aws_access_key_id")
    secret = options.get("aws_secret_access_key")
    if key_id and secret:
        token = options.get("aws_session_token")
        return Credentials(key_id.reveal(), secret.reveal(), token.reveal() if token else None)
    profile = options.get("aws_profile")
    try:
        import botocore.session  # noqa: PLC0415  (~0.3 s to import: only a deployment without keys pays it)

        session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
        return session.get_credentials()
    except ProfileNotFound:
        raise ValueError(f"deployment '{deployment.name}': AWS profile '{profile}' was not found") from None
    except BotoCoreError as exc:
        raise ValueError(f"deployment '{deployment.name}': cannot load AWS credentials: {type(exc).__name__}") from None


class SigV4Signer:
    """Signs Bedrock requests for one region and one host; holds credentials, never prints them."""

    __slots__ = ("_credentials", "region", "host", "origin", "deployment")

    def __init__(self, credentials: Any | None, region: str, host: str, origin: str, deployment: str):
        self._credentials = credentials
        self.region = region
        self.host = host  # exactly the host header our HTTP client sends
        self.origin = origin  # scheme://netloc, to rebuild the URL botocore signs
        self.deployment = deployment

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
        request = AWSRequest(method="POST", url=self.origin + path, data=body,
                             headers={"host": self.host, **dict(headers)})
        SigV4Auth(frozen, SERVICE, self.region).add_auth(request)
        # The client writes the host line itself; everything else botocore signed goes out (names lower-cased,
        # like every other header we send).
        return [(name.lower(), value) for name, value in request.headers.items() if name.lower() != "host"]


class BearerAuth:
    """A Bedrock API key: one static header, so there is nothing to sign per request."""

    __slots__ = ("_header",)

    def __init__(self, api_key: Any):
        self._header = ("authorization", f"Bearer {api_key.reveal()}")

    def __repr__(self) -> str:
        return "BearerAuth('***')"

    def sign(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, self._header]
