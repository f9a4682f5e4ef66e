"""Verify AWS Signature Version 4 on incoming requests, as Bedrock's front door does.

The request is rebuilt with botocore (same method, raw path, query, the headers named in SignedHeaders, the body,
the client's own x-amz-date) and signed again with the configured secret; the signatures must match. Errors are
AWS's own: AccessDeniedException (no Authorization header), IncompleteSignatureException (a malformed one),
UnrecognizedClientException (unknown access key or session token), InvalidSignatureException (wrong scope,
stale date, or a signature that does not match). The mismatch message carries the canonical request and the
string to sign, as AWS does, so a gateway's signing bug can be read off the answer; secrets never appear.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from .bedrock_wire import BedrockError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock"
_SKEW = dt.timedelta(minutes=5)
_STAMP = "%Y%m%dT%H%M%SZ"
_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
             "Access Key and signing method. Consult the service documentation for details.")
_BAD_TOKEN = "The security token included in the request is invalid."


@dataclass(slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str = "us-east-1"


def _front_door(status: int, type_: str, message: str) -> BedrockError:
    return BedrockError(status, type_, message, front_door=True)


class _ServerSigner(SigV4Auth):
    """botocore's signer, told exactly which headers the client signed (it would otherwise pick its own)."""

    def __init__(self, credentials: Credentials, region: str, signed: list[str]):
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request):
        chosen = HTTPHeaders()
        for name in self._signed:
            chosen[name] = request.headers.get(name, "")
        return chosen


def parse_authorization(header: str) -> dict[str, str]:
    """{'Credential': ..., 'SignedHeaders': ..., 'Signature': ...} from a SigV4 Authorization header."""
    _, _, rest = header.partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts[key] = value
    missing = [k for k in ("Credential", "Signature", "SignedHeaders") if not parts.get(k)]
    if missing:
        raise _front_door(400, "IncompleteSignatureException", " ".join(
            f"Authorization header requires '{k}' parameter." for k in missing))
    return parts


def verify(creds: AwsCredentials, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
           now: dt.datetime | None = None) -> None:
    """Raise the error AWS would answer, or return when the signature is good. `headers`: lower-case names."""
    header = headers.get("authorization", "")
    if not header.startswith(ALGORITHM + " "):
        raise _front_door(400, "IncompleteSignatureException",
                          f"Authorization header requires '{ALGORITHM}' as its algorithm.")
    parts = parse_authorization(header)
    access_key, _, scope = parts["Credential"].partition("/")
    stamp = headers.get("x-amz-date")
    if not stamp:
        raise _front_door(400, "IncompleteSignatureException",
                          "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    _check_scope(creds, scope, stamp)
    _check_clock(stamp, now or dt.datetime.now(dt.timezone.utc))
    if access_key != creds.access_key_id:
        raise _front_door(403, "UnrecognizedClientException", _BAD_TOKEN)
    token = headers.get("x-amz-security-token")
    if creds.session_token is not None and token != creds.session_token:
        raise _front_door(403, "UnrecognizedClientException", _BAD_TOKEN)
    signed = [name.strip() for name in parts["SignedHeaders"].split(";") if name.strip()]
    if "host" not in signed:
        raise _front_door(403, "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
    request = AWSRequest(method=method, url=f"http://{headers.get('host', '')}{path}" + (f"?{query}" if query else ""),
                         headers={name: headers.get(name, "") for name in signed}, data=body)
    request.context["timestamp"] = stamp
    signer = _ServerSigner(Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
                           creds.region, signed)
    canonical = signer.canonical_request(request)
    to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(to_sign, request)
    if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
        if token:
            canonical = canonical.replace(token, "<redacted>")
        raise _front_door(403, "InvalidSignatureException", f"{_MISMATCH}\n\nThe Canonical String for this request "
                          f"should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n")


def _check_scope(creds: AwsCredentials, scope: str, stamp: str) -> None:
    pieces = scope.split("/")
    if len(pieces) != 4 or pieces[3] != "aws4_request":
        raise _front_door(400, "IncompleteSignatureException",
                          f"Credential should be scoped to a valid scope: DATE/REGION/{SERVICE}/aws4_request.")
    date, region, service, _ = pieces
    if date != stamp[:8]:
        raise _front_door(403, "InvalidSignatureException",
                          f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                          f"'{date}' != '{stamp[:8]}', from '{stamp}'.")
    if region != creds.region:
        raise _front_door(403, "InvalidSignatureException",
                          f"Credential should be scoped to a valid region, not '{region}'. ")
    if service != SERVICE:
        raise _front_door(403, "InvalidSignatureException",
                          f"Credential should be scoped to correct service: '{SERVICE}'. ")


def _check_clock(stamp: str, now: dt.datetime) -> None:
    try:
        when = dt.datetime.strptime(stamp, _STAMP).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _front_door(400, "IncompleteSignatureException",
                          f"Date must be in ISO-8601 'basic format'. Got '{stamp}'.") from None
    now_text = now.strftime(_STAMP)
    if when < now - _SKEW:
        raise _front_door(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than "
                          f"{(now - _SKEW).strftime(_STAMP)} ({now_text} - 5 min.)")
    if when > now + _SKEW:
        raise _front_door(403, "InvalidSignatureException", f"Signature not yet current: {stamp} is still later "
                          f"than {(now + _SKEW).strftime(_STAMP)} ({now_text} + 5 min.)")
