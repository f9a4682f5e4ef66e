"""The gateway's HTTP application: a route table, authentication, and error rendering per protocol.

Each inbound protocol registers its routes with the error renderer of its own wire format, so a client mistake
on an OpenAI route gets OpenAI's error JSON and one on /v1/messages gets Anthropic's. No framework: a dict
lookup per request, then the route's handler.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from .. import errors
from ..context import RequestContext, new_request_id
from ..config.model import ConfigError
from ..db import parse_url
from ..db.responses import ResponseStore
from ..dispatch import Dispatcher, Outcome
from ..dispatch_shared import SharedRouting, shared_books
from ..governance import Governor
from ..governance.headers import rate_limit_headers
from ..health_checks import HealthChecker
from ..ledger.core import build_ledger
from ..net.server import HttpServer, Request, Response, StreamResponse, start_server
from ..protocols import openai as openai_protocol
from ..routing.policies import parse_residency
from ..routing.shared import SharedQuotaBook
from ..state import build_state
from ..telemetry import Telemetry, status_of

log = logging.getLogger("skyrelay.server")
SLOW_CLOSE_S = 1.0  # a shutdown step slower than this is logged with its duration
DRAIN_STEP = "draining the HTTP server"  # the one step allowed server.drain_timeout_s

JSON = ("content-type", "application/json")
SSE_HEADERS = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
RouteHandler = Callable[[Request], Awaitable["Response | StreamResponse"]]
ErrorRenderer = Callable[[errors.GatewayError], bytes]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    handler: RouteHandler
    render_error: ErrorRenderer
    authenticated: bool = True
    # A protocol whose errors carry more than a body (Anthropic's request-id header) answers them itself, also for
    # errors raised before its handler runs (authentication, method, body size) and the HTTP layer's own.
    error_reply: Callable[[errors.GatewayError, str | None], Response] | None = None  # (error, request id)
    # The body must be JSON: any other Content-Type is refused (415), so that a browser's cross-site "simple"
    # POST (text/plain, a form), which needs no CORS preflight, never reaches a handler.
    json_body: bool = False
    other_methods: tuple[str, ...] = ()  # methods served beside `method` (the handler tells them apart)
    # A client's request for a model (chat, embeddings, responses, messages): the ledger has one record of it
    # however it ends, refused before any model group included.
    recorded: bool = False
    # Served to Anthropic's SDKs too (/v1/models): a request carrying `anthropic-version` gets its errors in
    # Anthropic's format.
    anthropic_clients: bool = False


class Gateway:
    def __init__(self, config: Any, *, dispatcher: Dispatcher | None = None, config_path: str | None = None):
        self.config = config
        self.config_path = config_path  # the file SIGHUP and POST /admin/reload read again (server/reload.py)
        self.adapt_config: Callable[[Any], Any] | None = None  # applied to a reloaded config (a worker's share)
        replicas_share = config.state.backend == "redis"  # routing quotas, shares and breakers too
        self.dispatcher = dispatcher or Dispatcher.from_config(config, **(shared_books() if replicas_share else {}))
        self._master_key = config.server.master_key
        self.governor = Governor(config, build_state(config.state), self.dispatcher.quotas.input_tokens)
        self.dispatcher.governor = self.governor
        if replicas_share and isinstance(self.dispatcher.quotas, SharedQuotaBook):
            self.dispatcher.shared = SharedRouting(self.governor.state, self.dispatcher, self.governor)
            self.governor.defers = True  # the first attempt reserves the key's counters with its deployment's
        self._keys = self.governor.keys
        self.started_at = int(time.time())
        self.routes: dict[str, Route] = {}
        self.prefix_routes: list[tuple[str, Route]] = []  # `/v1/models/{id}`: tried only when no exact path matches
        self.anthropic_error_reply: Callable[[errors.GatewayError, str | None], Response] | None = None  # its routes'
        self.server: HttpServer | None = None
        self.closing: str | None = None  # the shutdown step under way (Gateway.close)
        self.health_checker = HealthChecker(self.dispatcher, config.deployments())
        self.telemetry = Telemetry(config, self.dispatcher, self.governor.state)
        self.dispatcher.on_close = self.telemetry.on_close
        self.ledger = build_ledger(config, self.dispatcher.clock)  # None with ledger.enabled: false
        self._record_refusal: Callable[..., None] | None = None  # the ledger's, once started
        self._tracer = self.telemetry.tracer
        self.metrics_peers: Any = None  # telemetry.peers.Peers (/metrics, /admin/stats), for one of `--workers N`
        self.responses_store = ResponseStore(  # stored Responses (store: true)
            parse_url(config.database.url), config.database.responses_retention_days * 86400)
        self._register_routes()

    def _register_routes(self) -> None:
        # Imported here: the route modules import this one for Route and the response helpers.
        from . import (admin_routes, admin_stats_routes, anthropic_routes, health_routes, ledger_routes, metrics_routes,
                       openai_routes, openapi_routes, reload_routes, responses_routes, ui_routes)

        openai_routes.register(self)
        responses_routes.register(self)
        anthropic_routes.register(self)
        health_routes.register(self)
        openapi_routes.register(self)
        metrics_routes.register(self)
        admin_routes.register(self)
        admin_stats_routes.register(self)
        ui_routes.register(self)
        reload_routes.register(self)
        ledger_routes.register(self)

    def add_route(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def add_prefix_route(self, prefix: str, route: Route) -> None:
        """A route for every path under `prefix` (the handler reads the rest of request.path)."""
        self.prefix_routes.append((prefix, route))

    def _prefix_route(self, path: str) -> Route | None:
        for prefix, route in self.prefix_routes:
            if path.startswith(prefix) and len(path) > len(prefix):
                return route
        return None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None, *,
                    reuse_port: bool = False) -> HttpServer:
        server = self.config.server
        if self.ledger is not None:  # before listening: no request may be served without its record
            self._start_ledger()
        connect = getattr(self.governor.state, "connect", None)
        if connect is not None:  # a worker's shared counters: connected before the first request can arrive
            await connect()
        await self.governor.registry.load()  # the keys made through the admin API, before the first request
        clashes = self.governor.registry.clash_problems()
        if clashes:  # a declared key named as a stored one: they would count as one
            await self.close()
            raise ConfigError(clashes, self.config_path)
        if self.dispatcher.shared is not None:  # the other replicas' counts and breakers, before the first request
            await self.dispatcher.shared.refresh()
        self.server = await start_server(
            self.handle, host if host is not None else server.host, port if port is not None else server.port,
            max_body_bytes=server.max_body_bytes, head_timeout=server.head_timeout, body_timeout=server.body_timeout,
            max_connections=server.max_connections, error_reply=self.http_error, reuse_port=reuse_port,
        )
        self.health_checker.start()
        if self.ledger is not None:  # budgets whose counters begin empty: seeded with what the ledger holds
            self.governor.seed_from(self.ledger.shipper, self.ledger.database)
        self.governor.start()
        if self.dispatcher.shared is not None:
            self.dispatcher.shared.start()
        self.telemetry.start()
        if self.metrics_peers is not None:
            from .metrics_routes import peer_answers

            await self.metrics_peers.start(peer_answers(self))
        self.responses_store.start()
        return self.server

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish for up to `grace` seconds, then close everything, step by
        step: `closing` names the step under way (the shutdown watchdog reports it), and a step slower than
        SLOW_CLOSE_S is logged, so a shutdown that drags says where."""
        for name, step in self._closing_steps(grace):
            self.closing = name
            started = time.monotonic()
            result = step()
            if result is not None:
                await result
            took = time.monotonic() - started
            if took > SLOW_CLOSE_S:
                log.warning("shutdown: %s took %.1f s", name, took)
        self.closing = None

    async def _drain(self, grace: float) -> None:
        await self.server.close(grace)
        self.server = None  # only once drained: requests still in flight may read it (base_url)

    def _closing_steps(self, grace: float) -> list[tuple[str, Callable[[], Awaitable[None] | None]]]:
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.server is not None:
            steps.append((DRAIN_STEP, lambda: self._drain(grace)))
        if self.metrics_peers is not None:
            steps.append(("closing the metrics peers", self.metrics_peers.close))
        steps.append(("stopping the health checks", self.health_checker.close))
        if self.dispatcher.shared is not None:  # its settles and breaker writes, before the state closes
            steps.append(("flushing the shared routing state", self.dispatcher.shared.aclose))
        steps += [("closing the key store and the state backend", self.governor.aclose),
                  ("closing the upstream connections", self.dispatcher.aclose),
                  ("closing telemetry", self.telemetry.close),
                  ("closing the responses store", self.responses_store.close)]
        if self.ledger is not None:
            steps.append(("shipping and closing the ledger", self.ledger.close))
        return steps

    def _start_ledger(self) -> None:
        """Every attempt is written ahead, and every closed request recorded before telemetry hears of it."""
        dispatcher, ledger, telemetry = self.dispatcher, self.ledger, self.telemetry.on_close
        dispatcher.ledger = ledger.start()
        record = dispatcher.ledger.request_closed

        def on_close(ctx: RequestContext) -> None:
            record(ctx, status_of(ctx.error))
            telemetry(ctx)

        dispatcher.on_close = on_close
        self._record_refusal = dispatcher.ledger.refused

    @property
    def providers(self):
        return self.dispatcher.providers

    @property
    def base_url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    # --- requests -----------------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | StreamResponse:
        # Every answer names its request, as OpenAI's do (the SDKs expose it as `_request_id`): the handle a user
        # quotes when asking what happened. Minted on arrival, so the request's context carries the same id.
        request.id = new_request_id()
        if self._tracer is not None:
            self._tracer.begin(request)
        resp = await self._route(request)
        resp.headers.append(("x-request-id", request.id))
        ctx = request.context
        if ctx is None or ctx.group is None:  # never reached a model group: its context's close will not tell
            route = self.routes.get(request.path)
            self.telemetry.on_unrouted(request, resp.status, request.path if route is not None else "other")
            # (a model request refused; not another method on its path, as Codex's WebSocket handshake)
            if (route is not None and route.recorded and request.method == route.method
                    and self._record_refusal is not None):
                error = request.error
                self._record_refusal(request.id, request.principal, type(error).__name__ if error is not None else None,
                                     resp.status)
        return resp

    def _named(self, resp: Response, request_id: str, route: Route | None = None) -> Response:
        """A refusal of the HTTP layer, which has no Request: named all the same, and recorded when it was a
        request for a model."""
        resp.headers.append(("x-request-id", request_id))
        if route is not None and route.recorded and self._record_refusal is not None:
            self._record_refusal(request_id, None, errors.HttpRefused.__name__, resp.status)
        return resp

    def http_error(self, status: int, message: str, path: str | None) -> Response:
        """The HTTP layer's own refusals (400, 408, 431, 500, 501, 503, 505) in the format of the route the
        request was for; OpenAI's when the path is unknown (not read yet) or not a route."""
        route = self.routes.get(path) if path is not None else None
        err = errors.HttpRefused(status, message)
        request_id = new_request_id()
        if route is not None and route.error_reply is not None:
            return self._named(route.error_reply(err, request_id), request_id, route)
        render = route.render_error if route is not None else openai_protocol.render_error
        return self._named(error_response(err, render), request_id, route)

    async def _route(self, request: Request) -> Response | StreamResponse:
        route = self.routes.get(request.path) or self._prefix_route(request.path)
        if route is None:
            err = errors.NotFound(f"Unknown request URL: {request.method} {request.path}", code="unknown_url")
            if self.anthropic_error_reply is not None and _from_anthropic_client(request):
                return self.anthropic_error_reply(err, request.id)
            return error_response(err, openai_protocol.render_error)
        try:
            if request.body_too_large:
                raise errors.PayloadTooLarge(
                    f"the request body is larger than the {self.config.server.max_body_bytes} bytes this gateway "
                    "accepts")
            if request.method != route.method and request.method not in route.other_methods:
                raise errors.MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use {route.method}")
            if route.json_body and request.method == route.method:
                if not is_json(request.headers.get("content-type")):
                    raise _not_json(request.headers.get("content-type"))
                encoding = request.headers.get("content-encoding")
                if encoding is not None and encoding.strip().lower() not in ("", "identity"):
                    raise errors.UnsupportedMediaType(
                        f"Content-Encoding {encoding[:40]!r} is not accepted: send the JSON body uncompressed")
            if route.authenticated:
                request.principal = self.authenticate(request.headers)
            return await route.handler(request)
        except errors.GatewayError as err:
            request.error = err
            return self._reply_error(route, err, request)
        except Exception:  # a bug on this request: answered in the route's own format, not the server's bare 500
            log.exception("unhandled error in handler for %s %s", request.method, request.path)
            request.error = err = errors.InternalError()
            return self._reply_error(route, err, request)

    def _reply_error(self, route: Route, err: errors.GatewayError, request: Request) -> Response:
        anthropic = self.anthropic_error_reply
        if route.anthropic_clients and anthropic is not None and "anthropic-version" in request.headers:
            return anthropic(err, request.id)
        return _reply_error(route, err, request.id)

    def authenticate(self, headers: dict[str, str]):
        """Accept the key as an OpenAI bearer token, an Azure `api-key` or an Anthropic `x-api-key`: the master
        key (None: no limits), or a declared key (its Principal). With neither configured, anything goes."""
        if self._master_key is None and not self._keys:
            return None
        key = presented_key(headers)
        keys = self._keys
        # A declared key presented before is found by its string at once: no comparison with the master key, which
        # never enters that memo (it matches here first, before any lookup could remember it).
        seen = keys.seen
        principal = seen.get(key) if seen else None
        if principal is not None:
            return keys.usable(principal)
        if self._master_key is not None and self._master_key.matches(key):
            return None
        principal = keys.resolve(key)
        if principal is None:
            raise errors.AuthenticationFailed("invalid API key")
        return principal


def presented_key(headers: dict[str, str]) -> str:
    """The key a client sent: an OpenAI bearer token, an Azure `api-key` or an Anthropic `x-api-key`."""
    auth = headers.get("authorization")
    if auth is not None and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
    else:
        key = headers.get("x-api-key") or headers.get("api-key")
    if not key:
        raise errors.AuthenticationFailed(
            "missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key' / 'api-key')")
    return key


def _from_anthropic_client(request: Request) -> bool:
    """An Anthropic SDK (it always sends `anthropic-version`), or a path of Anthropic's Messages API."""
    return "anthropic-version" in request.headers or request.path.startswith(("/v1/messages", "/messages"))


def _reply_error(route: Route, err: errors.GatewayError, request_id: str) -> Response:
    if route.error_reply is not None:
        return route.error_reply(err, request_id)
    return error_response(err, route.render_error)


def error_response(err: errors.GatewayError, render: ErrorRenderer) -> Response:
    headers = [JSON]
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None and retry_after == retry_after and retry_after != float("inf"):  # finite only
        headers.append(("retry-after", str(max(1, round(retry_after)))))
    if err.route is not None:
        headers.append(("x-skyrelay-route", err.route))
    if err.headers:
        headers += err.headers
    # An InternalError was logged with its traceback already; an HttpRefused is the client's (a 5xx by protocol only).
    if err.status >= 500 and not isinstance(err, (errors.InternalError, errors.HttpRefused)):
        log.warning("request failed: %s", err.message)
    return Response(err.status, render(err), headers)


def is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, parameters (charset) allowed, in any case."""
    if content_type is None:
        return False
    if content_type == "application/json":  # what nearly every client sends: no parsing
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _not_json(content_type: str | None) -> errors.UnsupportedMediaType:
    sent = f"Content-Type {content_type[:100]!r}" if content_type is not None else "no Content-Type"
    return errors.UnsupportedMediaType(f"the body must be JSON, sent with 'Content-Type: application/json'; "
                                       f"this request has {sent}")


def outcome_headers(outcome: Outcome, anthropic: bool = False) -> list[tuple[str, str]]:
    """Which deployment served the request, after how many attempts, for which model group; the best-effort
    fields its cloud served it without, if any; and the key's rate limits, as OpenAI (or `anthropic`) says them."""
    headers = [
        ("x-skyrelay-deployment", outcome.deployment.name),
        ("x-skyrelay-attempts", str(outcome.attempts)),
        ("x-skyrelay-model-group", outcome.group),
    ]
    if outcome.dropped:
        headers.append(("x-skyrelay-dropped-params", ", ".join(outcome.dropped)))
    if outcome.context.admission is not None:  # a key with limits: x-ratelimit-* (anthropic-ratelimit-*)
        headers += rate_limit_headers(outcome.context, anthropic)
    if outcome.context.cost_usd is not None:  # a whole answer's (a stream's is known at its end: docs/ledger.md)
        headers.append(("x-skyrelay-cost-usd", usd(outcome.context.cost_usd)))
    if outcome.context.debug_route:
        headers.append(("x-skyrelay-route", outcome.route()))
    return headers


def usd(amount: float) -> str:
    """Dollars in plain decimal (no exponent), to the micro-cent."""
    return f"{amount:.8f}".rstrip("0").rstrip(".") or "0"


def context_for(request: Request) -> RequestContext:
    """The request's context, under the id it answers with; its body size feeds the quota's token estimate."""
    headers = request.headers
    residency = headers.get("x-skyrelay-residency")
    if residency is not None:
        residency = parse_residency(residency)
        if not residency:
            raise errors.InvalidRequest("the x-skyrelay-residency header names no geo or region (e.g. 'eu')")
    request.context = ctx = RequestContext(request.id, body_bytes=len(request.body), path=request.path,
                                           debug_route=headers.get("x-skyrelay-debug") == "route",
                                           residency=residency, principal=request.principal)
    return ctx


def json_response(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(payload), [JSON, *(headers or ())])
