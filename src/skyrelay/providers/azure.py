"""Azure OpenAI: the OpenAI wire format at Azure's per-deployment URLs, with Azure's credentials and errors.

Bodies are OpenAI's, so the OpenAI provider does the work (fast path included: Azure ignores `model` in the body,
the URL names the deployment). This module changes only where requests go, how they authenticate, and how
Azure's error shape (content filtering above all) becomes a typed gateway error.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable
from urllib.parse import quote

from .. import errors
from ..canonical import ChatChunk, ChatRequest
from .base import error_detail, error_for_status, error_message, named_not_found, retry_after_seconds
from .openai import ChunkEvents, OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"
# Azure's "v1" API: /openai/v1/... without api-version, the deployment named by `model` in the body.
V1_API = "v1"
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})
# Earlier api-versions refuse `stream_options` (so streams carry no usage there); "v1" and previews sort after.
_STREAM_USAGE_SINCE = "2024-09-01"
_TOKEN_CHECK_INTERVAL = 1.0  # seconds between stat() calls on azure_ad_token_file


class AzureChunkEvents(ChunkEvents):
    """OpenAI's stream events as Azure sends them, less the one chunk no OpenAI client expects."""

    __slots__ = ()

    def decode(self, event: str | None, payload: bytes) -> tuple[ChatChunk, ...]:
        chunks = super().decode(event, payload)
        # Azure opens with a choice-less chunk of prompt_filter_results (id and model empty): not an OpenAI chunk
        # any client expects, and it would pin an empty id on the stream's first chunk.
        if chunks and not chunks[0].id and _carries_nothing(chunks[0]):
            return ()
        return chunks


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"
    stream_events = AzureChunkEvents

    def __init__(self, deployment: Any):
        options = deployment.options
        self.api_version = str(options.get("api_version") or DEFAULT_API_VERSION)
        self._token_file = TokenFile(options["azure_ad_token_file"]) if options.get("azure_ad_token_file") else None
        super().__init__(deployment)
        if self.api_version == V1_API:
            prefix, query = "/openai/v1", ""
        else:
            prefix = f"/openai/deployments/{quote(deployment.model, safe='')}"
            query = f"?api-version={quote(self.api_version, safe='')}"
        self._chat_path = f"{prefix}/chat/completions{query}"
        self._embeddings_path = f"{prefix}/embeddings{query}"
        self._stream_usage = self.api_version >= _STREAM_USAGE_SINCE

    def chat_body(self, req: ChatRequest) -> dict[str, Any]:
        body = super().chat_body(req)
        if not self._stream_usage:
            body.pop("stream_options", None)
        return body

    def build_headers(self) -> list[tuple[str, str]]:
        """Headers without the bearer token of a token file: that one is added per request (it rotates)."""
        headers = [("content-type", "application/json"), ("accept", "application/json")]
        key = self.deployment.api_key
        token = self.deployment.options.get("azure_ad_token")
        if key:
            headers.append(("api-key", key.reveal()))
        elif token:
            headers.append(("authorization", f"Bearer {token.reveal()}"))
        headers += list(self.deployment.headers.items())
        return headers

    def chat_path(self) -> str:
        return self._chat_path

    def embeddings_path(self) -> str:
        return self._embeddings_path

    def responses_path(self) -> str:
        return "/openai/v1/responses"  # the v1 API, whatever api-version chat uses: the body's model names the deployment

    def request_headers(self) -> list[tuple[str, str]]:
        if self._token_file is None:
            return self.headers
        return [*self.headers, ("authorization", f"Bearer {self._token_file.token(self.name)}")]

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        return azure_error(status, headers, body, self.name)


def azure_error(status: int, headers: dict[str, str], body: bytes, deployment: str) -> errors.UpstreamError:
    """Azure's {"error": {"code", "message", "innererror"?}} -> a typed gateway error."""
    code, message = _code_and_message(body)
    if status == 400 and code in _FILTER_CODES:
        return errors.UpstreamClientError(
            f"The prompt was filtered by Azure's content filter (deployment '{deployment}'): {message}",
            status=400, type="invalid_request_error", code="content_filter", deployment=deployment)
    err = (status == 404 and named_not_found(body, deployment)
           or error_for_status(status, message, deployment, retry_after_seconds(headers)))
    if isinstance(err, errors.UpstreamClientError) and code and not isinstance(err, errors.UpstreamAuthFailed):
        err.code = code  # e.g. context_length_exceeded: clients branch on it
    return err


def _code_and_message(body: bytes) -> tuple[str | None, str]:
    err = error_detail(body)
    if not err:
        return None, error_message(body)
    code = err.get("code")
    inner = err.get("innererror")
    if code not in _FILTER_CODES and isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation":
        code = "content_filter"
    return (code if isinstance(code, str) else None), error_message(body)


def _carries_nothing(chunk: ChatChunk) -> bool:
    return (chunk.role is None and chunk.content is None and not chunk.tool_calls and chunk.finish_reason is None
            and chunk.usage is None)


class TokenFile:
    """A bearer token kept in a file that something else rotates (workload identity, a sidecar).

    Re-read when its mtime changes, looked at no more than once a second; a failed read keeps the last good
    token, so a rotation by rename-over does not fail requests in between. The token is never put in a message.
    """

    __slots__ = ("path", "clock", "_token", "_mtime", "_checked")

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.clock = clock
        self._token = ""
        self._mtime = -1.0
        self._checked = float("-inf")

    def token(self, deployment: str) -> str:
        now = self.clock()
        if now - self._checked >= _TOKEN_CHECK_INTERVAL or not self._token:
            self._checked = now
            self._refresh()
        if not self._token:
            raise errors.UpstreamAuthFailed(
                f"deployment '{deployment}': cannot read a token from azure_ad_token_file {self.path!r}",
                deployment=deployment)
        return self._token

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            if mtime == self._mtime:
                return
            with open(self.path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            return
        if token:
            self._token, self._mtime = token, mtime
