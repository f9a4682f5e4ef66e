"""What every provider shares: the interface, the HTTP pool it is built on, and failure mapping at the edge.

A provider is bound to one deployment. It turns canonical requests into its cloud's wire format, sends them over
a pooled connection, and turns the answer back into canonical responses or chunks. Every failure leaves it as a
typed `errors.UpstreamError` (`map_transport_errors`, `error_for_status`), so the dispatcher can decide whether
to fail over without knowing any cloud.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any, AsyncIterator, Callable, Iterable, Protocol

import orjson

from .. import errors
from ..canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from ..net import client as http
from ..telemetry.tracing import upstream_traceparent
from .extras import dropped


class ChunkDecoder(Protocol):
    """Turns a streaming answer's body into chunks as its bytes arrive."""

    def feed(self, data: bytes) -> Iterable[ChatChunk]: ...

    def finish(self) -> Iterable[ChatChunk]:
        """The body ended: the closing chunks, or an UpstreamError if the answer stopped short."""
        ...


def translating_sink(plain: Callable[[bytes], list[ChatChunk] | None], write: Callable[[bytes], bool],
                     render: Callable[[ChatChunk], bytes]) -> Callable[[bytes], bool]:
    """A translated stream's sink (Response.pipe; a decoder's `translated`): the upstream bytes its decoder's
    `plain` reads as content chunks alone, without changing its state, are rendered and given to `write`, which
    says whether it took them (not while the client's socket is full: the reader then reads the same bytes
    again); anything else (usage, the end, errors, odd spellings) is left to the decoder's `feed`."""
    def take(data: bytes) -> bool:
        chunks = plain(data)
        if chunks is None:
            return False
        return write(b"".join([render(chunk) for chunk in chunks])) if chunks else True
    return take


# What Provider.open_stream returns: the answer (head read, body not yet) and the decoder of its body.
OpenedStream = tuple[http.Response, ChunkDecoder]
# The name of an Anthropic history's thinking blocks in x-skyrelay-dropped-params, when a cloud serves without some.
THINKING_HISTORY = ("messages.content.thinking",)


class Provider:
    """Base class: holds the deployment and its connection pool; subclasses implement the wire format."""

    kind = "base"
    # The extra request fields this cloud maps or forwards; None: it forwards every one (OpenAI-compatible).
    honoured_extras: frozenset[str] | None = None
    # Serves an Anthropic client's request from its own body (ChatRequest.anthropic), not the canonical fields.
    speaks_anthropic = False
    shows_thoughts = False  # a summary of the model's thoughts when asked (ChatRequest.show_thoughts), not its blocks
    # Serves a Responses API request from its own body (ChatRequest.responses), not the canonical fields.
    speaks_responses = False
    # Called with an answer's headers when they hold one of `limit_headers` (the dispatcher sets both: it reads
    # the rate-limit ones into its quota counts).
    observe_limits: Any = None
    limit_headers: frozenset[str] = frozenset()
    traced = False  # set when tracing is configured: each call then carries its attempt's traceparent

    def __init__(self, deployment: Any):
        self.deployment = deployment
        self.name = deployment.name
        t = deployment.timeouts
        self.http = http.HttpClient(
            self.endpoint(), max_connections=deployment.max_connections, connect_timeout=t.connect,
            first_byte_timeout=t.first_byte, total_timeout=t.total,
        )

    def endpoint(self) -> str:
        """The origin (and base path) requests go to."""
        return self.deployment.base_url

    async def chat(self, req: ChatRequest) -> ChatResponse:
        raise errors.UnsupportedFeature(f"deployment '{self.name}' ({self.kind}) does not serve chat completions")

    async def chat_stream(self, req: ChatRequest, opened: list[OpenedStream] | None = None
                          ) -> AsyncIterator[ChatChunk]:
        """An async generator of chunks. It raises (an UpstreamError) before its first chunk if the upstream fails
        to start, so the dispatcher can still fail over invisibly. The response is closed however the stream ends:
        finished, failed, or abandoned by the caller (aclose). The opened response and its decoder are appended to
        `opened`, for a caller that pipes the rest of a pass-through stream (dispatch_stream.CommittedStream)."""
        resp, decoder = await self.open_stream(req)
        if opened is not None:
            opened.append((resp, decoder))
        try:
            with map_transport_errors(self.name):
                async for data in resp.iter_chunks():
                    for chunk in decoder.feed(data):
                        yield chunk
            for chunk in decoder.finish():
                yield chunk
        finally:
            await resp.aclose()

    async def open_stream(self, req: ChatRequest) -> OpenedStream:
        """Send a streaming chat request; chat_stream reads the answer. Clouds that stream override this."""
        raise errors.UnsupportedFeature(f"deployment '{self.name}' ({self.kind}) does not serve streaming chat")

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        raise errors.UnsupportedFeature(f"deployment '{self.name}' ({self.kind}) does not serve embeddings", param="model")

    async def count_tokens(self, native: Any) -> int:
        """The input tokens of an Anthropic client's prompt (ChatRequest.anthropic's AnthropicNative), counted by
        the cloud; clouds without a counting call raise UnsupportedFeature and the gateway estimates instead."""
        raise errors.UnsupportedFeature(f"deployment '{self.name}' ({self.kind}) does not count tokens")

    async def health_probe(self) -> None:
        """The cheapest honest proof that the deployment serves again, for active health checks; raises an
        UpstreamError when it does not. By default a one-token chat: it exercises the model itself (a models list
        would only prove the endpoint answers). Clouds with a cheaper call that is as honest override this."""
        await self.chat(ChatRequest(model=self.deployment.group, messages=_PROBE_MESSAGES, max_tokens=1))

    def dropped_native(self, native: Any) -> tuple[str, ...]:
        """The fields of an Anthropic client's request (ChatRequest.anthropic) this cloud served it without: the
        hints the canonical form leaves out; clouds that speak Anthropic say what their own body leaves out."""
        return () if self.speaks_anthropic else native.hints

    def dropped_thinking(self, req: ChatRequest) -> tuple[str, ...]:
        """The thinking blocks of an Anthropic client's history this cloud served the request without, named: an
        Anthropic-family cloud leaves out only the gateway-signed ones (another cloud's thoughts); any other keeps
        those it hands back (`hands_back`)."""
        kept = not req.anthropic.sealed if self.speaks_anthropic else self.takes_thinking(req.thinking or {})
        return () if kept else THINKING_HISTORY

    def takes_thinking(self, thinking: dict[int, list[dict[str, Any]]]) -> bool:
        """Whether this cloud hands every thinking block of the history back: an Anthropic-family cloud its own
        (not another cloud's canonical thoughts), any other those `hands_back` names."""
        if self.speaks_anthropic:
            return all(block.get("type") != "thought" for blocks in thinking.values() for block in blocks)
        return all(self.hands_back(block) for blocks in thinking.values() for block in blocks)

    def hands_back(self, block: dict[str, Any]) -> bool:
        """Whether this cloud takes a canonical thinking block of the history back (ChatRequest.thinking)."""
        return False

    def dropped_extras(self, extra: dict[str, Any]) -> tuple[str, ...]:
        """The best-effort fields of a request this cloud served without (its request builder left them out)."""
        return () if self.honoured_extras is None else dropped(extra, self.honoured_extras)

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- helpers for subclasses ---------------------------------------------------------------------------------

    async def post_json(self, path: str, headers: list[tuple[str, str]], payload: Any) -> http.Response:
        """POST a JSON body; return the response head (body unread) after mapping failures to typed errors."""
        try:
            body = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:
            # The client's values, which this cloud's body cannot carry (nested too deeply once wrapped, most
            # likely): the request's fault, refused before anything is sent.
            raise errors.InvalidRequest(f"the request cannot be encoded for deployment '{self.name}': {exc}") from None
        headers = self.sign(path, body, headers)
        if self.traced:  # the attempt's span, named to the cloud (added after signing: no cloud signs it)
            traceparent = upstream_traceparent(self.name)
            if traceparent is not None:
                headers = [*headers, ("traceparent", traceparent)]
        try:  # (not map_transport_errors: a `with` costs three calls on every request, a `try` none)
            resp = await self.http.send("POST", path, headers, body)
        except http.ClientError as exc:
            raise transport_error(exc, self.name) from None
        if self.observe_limits is not None and not self.limit_headers.isdisjoint(resp.headers):
            self.observe_limits(resp.headers)
        if resp.status >= 400:
            raise self.error_from_response(resp.status, resp.headers, await self.read_body(resp))
        return resp

    def sign(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers to send with exactly this body; clouds that sign each request (Bedrock) override this."""
        return headers

    async def post_json_read(self, path: str, headers: list[tuple[str, str]], payload: Any) -> Any:
        return (await self.post_json_read_raw(path, headers, payload))[1]

    async def post_json_read_raw(self, path: str, headers: list[tuple[str, str]], payload: Any) -> tuple[bytes, Any]:
        """POST a JSON body and return the answer both as bytes (to forward as is) and parsed."""
        resp = await self.post_json(path, headers, payload)
        raw = resp.arrived_body()  # the usual case, read without the coroutines of read_json and read_body
        if raw is None:
            raw = await self.read_body(resp)
        return raw, load_json(raw, self.name, "answered a body")

    async def read_json(self, resp: http.Response) -> tuple[bytes, Any]:
        """The whole body of an answer, as bytes and parsed; the response is closed."""
        raw = await self.read_body(resp)
        return raw, load_json(raw, self.name, "answered a body")

    async def read_body(self, resp: http.Response) -> bytes:
        """The whole body of an answer; the response is closed even when reading fails or is cancelled."""
        try:
            with map_transport_errors(self.name):
                return await resp.read()
        finally:
            await resp.aclose()

    def error_from_response(self, status: int, headers: dict[str, str], body: bytes) -> errors.UpstreamError:
        """Map an error answer to a typed error; providers override to read their cloud's error shape."""
        return (status == 404 and named_not_found(body, self.name)
                or error_for_status(status, error_message(body), self.name, retry_after_seconds(headers)))


_PROBE_MESSAGES = [{"role": "user", "content": "ping"}]


def load_json(payload: bytes, deployment: str, what: str) -> Any:
    """Parse what an upstream sent; JSON it is not is the upstream's protocol error. `what` says what it was,
    as in "deployment 'x' <what> that is not JSON" ("answered a body", "sent a stream event")."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise errors.UpstreamProtocolError(
            f"deployment '{deployment}' {what} that is not JSON", deployment=deployment) from None


def as_int(value: Any) -> int:
    """A token count or timestamp from an upstream's JSON: an integer, else 0 (JSON `true` is not 1)."""
    return value if type(value) is int else 0


class map_transport_errors:
    """Translate the HTTP client's failures into the gateway's typed upstream errors, once, at the edge.

    A class rather than @contextmanager: it runs twice per request, and a generator-based one costs several
    times more to enter and leave."""

    __slots__ = ("deployment",)

    def __init__(self, deployment: str):
        self.deployment = deployment

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None or not issubclass(kind, http.ClientError):
            return False
        raise transport_error(exc, self.deployment) from None


def transport_error(exc: http.ClientError, deployment: str) -> errors.UpstreamError:
    """The gateway's typed error for a failure of the HTTP client."""
    for client_error, gateway_error in _TRANSPORT_ERRORS:
        if isinstance(exc, client_error):
            return gateway_error(f"deployment '{deployment}': {exc}", deployment=deployment)
    return errors.UpstreamConnectError(f"deployment '{deployment}': {exc}", deployment=deployment)


_TRANSPORT_ERRORS = (  # in order: the first class that matches decides
    (http.SlowReaderTimeout, errors.ClientTooSlow),
    ((http.ConnectTimeout, http.FirstByteTimeout, http.ReadTimeout, http.TotalTimeout), errors.UpstreamTimeout),
    ((http.ConnectFailed, http.ConnectionClosed), errors.UpstreamConnectError),
    (http.ProtocolError, errors.UpstreamProtocolError),
)


def error_for_status(status: int, message: str, deployment: str, retry_after: float | None = None,
                     type_: str | None = None) -> errors.UpstreamError:
    """The one table that says what an upstream HTTP status means for routing."""
    detail = f"deployment '{deployment}' answered {status}: {message}"
    if status == 429:
        return errors.UpstreamRateLimited(detail, deployment=deployment, retry_after=retry_after)
    if status in (401, 403):
        return credentials_refused(str(status), deployment)
    if status in (404, 405):
        # The deployment's model or route does not exist there: a configuration problem, try elsewhere.
        return errors.UpstreamUnavailable(detail, deployment=deployment)
    if status == 408:
        return errors.UpstreamTimeout(detail, deployment=deployment)
    if status >= 500:
        return errors.UpstreamUnavailable(detail, deployment=deployment, retry_after=retry_after)
    # Any other 4xx: the request itself is wrong; pass the upstream's own words through, never retry.
    return errors.UpstreamClientError(message, status=status, type=type_ or "invalid_request_error",
                                      deployment=deployment)


def named_not_found(body: bytes, deployment: str) -> errors.UpstreamClientError | None:
    """A 404 about something the request named (a reasoning item, a file, a stored response), not about the
    deployment: OpenAI's (and Azure's) error then names the request's field, `param` (`input`), where a missing
    model or a wrong URL names none (or `model`). The client's to fix: passed through, never retried, and no
    failure of the deployment (three such requests opened its breaker for every client). None otherwise."""
    err = error_detail(body)
    param = err.get("param")
    if not isinstance(param, str) or not param or param == "model":
        return None
    message, code = err.get("message"), err.get("code")
    return errors.UpstreamClientError(message if isinstance(message, str) else "not found", status=404,
                                      param=param, code=code if isinstance(code, str) else None,
                                      deployment=deployment)


def error_detail(body: bytes) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error body (`{"error": {"message", "type", "param", "code"}}`), or {}."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    detail = data.get("error") if isinstance(data, dict) else None
    return detail if isinstance(detail, dict) else {}


def credentials_refused(answered: str, deployment: str) -> errors.UpstreamAuthFailed:
    """The upstream refused the gateway's credentials: the operator's problem, so another deployment is tried.

    The upstream's own words are left out on purpose: they may quote part of the key (OpenAI's "Incorrect API key
    provided: sk-...abcd") or a signed request, and this message reaches the client and the logs."""
    return errors.UpstreamAuthFailed(
        f"deployment '{deployment}' refused the gateway's credentials ({answered}); check that deployment's "
        "credentials in the configuration", deployment=deployment)


def error_message(body: bytes) -> str:
    """The human message of an error body in any of the usual shapes, else a short excerpt."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("Message")
            if isinstance(msg, str):
                return msg
        if isinstance(err, str):
            return err
        for key in ("message", "Message", "detail"):
            if isinstance(data.get(key), str):
                return data[key]
    return body[:200].decode("utf-8", "replace")


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, `retry-after` (seconds or an HTTP date), else None."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return sane_wait(float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return sane_wait(float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        return sane_wait(when - time.time())


MAX_RETRY_AFTER = 3600.0  # an upstream asking for more (or for inf / NaN) is capped: a cool-down is not a ban


def sane_wait(seconds: float) -> float | None:
    """A wait an upstream asked for, made safe to use: never negative, NaN or infinite."""
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
