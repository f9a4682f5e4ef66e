"""The attempt loop: plan -> send -> fail over -> result, for whole responses and for streams.

Routing decides the order (pure policy); this module does the I/O around it: it calls providers, feeds outcomes
back into the health book, keeps the outstanding-request counts, and turns a run of failures into one error
that says what happened. A stream is committed to a deployment once its first chunk is in hand: before that a
failure fails over invisibly, after it the stream ends with an error event (the protocol renders it). A stream's
verdict on the deployment's health is how it ends, not how it started: a cloud that cuts every stream after its
first tokens must leave rotation like one that refuses them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from typing import Any, Awaitable, Callable, Mapping

from . import errors
from .canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from .context import Attempt, RequestContext
from .dispatch_errors import exhausted_error, residency_words
from .dispatch_hedge import race
from .dispatch_shared import REFUSED
from .dispatch_stream import CommittedStream, stream_head
from .providers import build_provider
from .providers.base import Provider
from .routing.health import HealthBook
from .routing.latency import LatencyBook
from .routing.planner import Plan, plan
from .routing.policies import CONCENTRATION, ShareBook, estimated_cost
from .routing.quotas import CONCURRENCY, QUOTA, SIGNAL_HEADERS, QuotaBook
from .routing.strategies import LATENCY_AWARE
from .routing.view import RoutingView

log = logging.getLogger("skyrelay.dispatch")


class Outcome:
    """Which deployment served a request, after how many attempts, what failed on the way, and which best-effort
    request fields that deployment's cloud served it without."""

    __slots__ = ("group", "deployment", "attempt", "attempts", "failures", "dropped", "context", "reservation",
                 "plan")

    def __init__(self, group: str, context: RequestContext):
        self.group = group
        self.context = context
        self.reservation: list | None = None  # a stream's quota entry, settled when the stream ends
        self.plan: Plan | None = None  # the routing decision, kept for x-skyrelay-route
        self.deployment: Any = None
        self.attempt: Attempt | None = None  # the one that served
        self.attempts = 0
        self.failures: list[tuple[str, errors.GatewayError]] = []
        self.dropped: tuple[str, ...] = ()

    def route(self) -> str:
        """Every deployment considered and its verdict: the skipped ones with their reasons, then those tried."""
        parts = [f"{d.name}: {reason}" for d, reason, _ in (self.plan.skipped if self.plan else ())]
        over_cap = {d.name for d in self.plan.over_cap} if self.plan and self.plan.over_cap else ()
        for attempt in self.context.attempts:
            if attempt.status in ("ok", None):
                verdict = "chosen"
            elif attempt.status == "cancelled":
                verdict = "cancelled (the other attempt answered first)"
            else:
                verdict = f"{attempt.status} ({attempt.error_kind})"
            if attempt.hedged:
                verdict = f"hedge after {_ms(attempt.start - self.context.arrival)}: {verdict}"
            if attempt.deployment in over_cap:
                verdict += " (over the concentration cap)"
            parts.append(f"{attempt.deployment}: {verdict}")
        return "; ".join(parts)


class Dispatcher:
    def __init__(
        self, model_groups: Mapping[str, Any], providers: Mapping[str, Provider], *,
        health: HealthBook | None = None, clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None, quotas: QuotaBook | None = None, latencies: LatencyBook | None = None,
        shares: ShareBook | None = None,
    ):
        self.health = health or HealthBook()
        self.clock = clock
        self.rng = rng or random.Random()
        self.outstanding: dict[str, int] = {}  # requests in flight per deployment
        self.quotas = quotas or QuotaBook()
        self.on_close: Callable[[RequestContext], None] | None = None  # every request's context gets it (telemetry)
        self.latencies = latencies or LatencyBook()
        self.shares = shares or ShareBook()  # vendor shares per group; .breaches and .refusals count the cap's edge
        self.view = RoutingView(self.health, self.outstanding, self.quotas, self.latencies, self.shares)
        self.governor: Any = None  # skyrelay.governance.Governor: set by the gateway for requests with a key
        self.ledger: Any = None  # skyrelay.ledger.record.Recorder: set by the gateway when the ledger is on
        self.shared: Any = None  # dispatch_shared.SharedRouting: set by the gateway when replicas share Redis
        self._waiting = 0  # requests waiting for quota headroom (queue_timeout_ms)
        self._headroom = asyncio.Event()  # set when an attempt ends while some request waits
        self._queues: dict[str, asyncio.Lock] = {}
        self.reconfigure(model_groups, providers)

    def reconfigure(self, model_groups: Mapping[str, Any], providers: Mapping[str, Provider]) -> None:
        """Serve these groups with these providers from the next request on (a reload). What is known of each
        deployment is kept by name (health, latency, quota and share counts); requests in flight finish with the
        plan they made, skipping deployments no longer configured."""
        self.groups = model_groups
        self.providers = providers
        for name, provider in providers.items():  # the upstream's rate-limit headers correct the quota counts
            self.outstanding.setdefault(name, 0)
            provider.observe_limits = functools.partial(self._observe_limits, name)
            provider.limit_headers = SIGNAL_HEADERS  # answers without them are not handed over at all
        # Timings cost ~1 us a request to record: only when some group's strategy (or hedge) reads them.
        self.measures_latency = any(g.strategy in LATENCY_AWARE or (g.hedge is not None and g.hedge.after_ms is None)
                                    for g in model_groups.values())
        # The groups with a concentration cap, by name: only their attempts pay for counting vendor shares.
        self._capped = {name: g.concentration for name, g in model_groups.items() if g.concentration is not None}
        if self.shared is not None:
            self.shared.configure(model_groups)

    @classmethod
    def from_config(cls, config: Any, **kw) -> "Dispatcher":
        """One provider (with its connection pool) per deployment named in the configuration."""
        providers: dict[str, Provider] = {}
        for group in config.model_groups.values():
            for deployment in group.deployments:
                if deployment.name not in providers:
                    providers[deployment.name] = build_provider(deployment)
        kw.setdefault("health", HealthBook(config.health))
        return cls(config.model_groups, providers, **kw)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()

    def group(self, model: str, ctx: RequestContext | None = None) -> Any:
        group = self.groups.get(model)
        if group is None:
            # Only the groups the caller may use are named: a key limited to some should not learn the others.
            allowed = ctx.principal.models if ctx is not None and ctx.principal is not None else None
            known = [name for name in self.groups if allowed is None or name in allowed]
            raise errors.NotFound(f"The model '{model}' does not exist; known models: {', '.join(known)}",
                                  param="model")
        return group

    async def chat(self, req: ChatRequest, ctx: RequestContext | None = None) -> tuple[ChatResponse, Outcome]:
        native = req.anthropic or req.responses
        call = (lambda provider: provider.chat(req)) if native is None else (
            lambda provider: provider.chat(_as_spoken_by(provider, req)))
        resp, outcome = await self._attempt_loop(req.model, call, ctx, req.max_tokens, hold=False,
                                                 prompt=req)
        if req.extra or native is not None:
            self._note_dropped(req, outcome)
        return resp, outcome

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext | None = None
                    ) -> tuple[EmbeddingResponse, Outcome]:
        return await self._attempt_loop(req.model, lambda provider: provider.embed(req), ctx, 0, hold=False)

    async def chat_stream(self, req: ChatRequest, ctx: RequestContext | None = None
                          ) -> tuple["CommittedStream", Outcome]:
        """Start a stream on the first deployment that produces real output; return the whole stream."""
        (head, rest, opened), outcome = await self._attempt_loop(
            req.model, lambda provider: stream_head(provider, _as_spoken_by(provider, req)), ctx, req.max_tokens,
            hold=True, prompt=req)
        if req.extra or req.anthropic is not None or req.responses is not None:
            self._note_dropped(req, outcome)
        return CommittedStream(self, outcome, head, rest, opened), outcome

    def _note_dropped(self, req: ChatRequest, outcome: Outcome) -> None:
        """Judged for the deployment that served, from its cloud's table: pure, so earlier attempts (which saw the
        same request) leave nothing behind."""
        provider = self.providers.get(outcome.deployment.name)
        if provider is None:  # removed by a reload while the request was in flight
            return
        native = req.responses
        if native is not None:  # served from its own body, or from the canonical form (with what it left out)
            if provider.speaks_responses:
                outcome.dropped = ()
            else:
                dropped = native.dropped
                if not provider.speaks_anthropic:
                    dropped += _not_shown(native.anthropic_only, provider, req.thinking)
                elif req.thinking and not provider.takes_thinking(req.thinking):
                    dropped += ("input.reasoning",)  # another cloud's sealed thoughts, which Claude would refuse
                outcome.dropped = tuple(dict.fromkeys(dropped + provider.dropped_extras(req.extra)))
            return
        dropped = provider.dropped_extras(req.extra)
        if req.anthropic is not None:
            dropped = provider.dropped_native(req.anthropic) + dropped
            if req.thinking or req.anthropic.sealed:
                dropped = provider.dropped_thinking(req) + dropped
        outcome.dropped = dropped

    async def _attempt_loop(self, model: str, call: Callable[[Provider], Awaitable[Any]],
                            ctx: RequestContext | None, max_output: int | None, *, hold: bool,
                            prompt: ChatRequest | None = None):
        group = self.group(model, ctx)
        if ctx is None:
            ctx = RequestContext()
        ctx.arrival = self.clock()
        ctx.group = group.name
        ctx.max_output = max_output
        ctx.prompt = prompt
        ctx.streamed = hold
        if ctx.on_close is None:
            ctx.on_close = self.on_close
        outcome = Outcome(group.name, ctx)
        try:  # one coroutine for the whole loop: the request path pays for every frame
            if ctx.principal is not None:  # a declared key: models, limits, budgets (Redis: its first attempt reserves)
                pending = self.governor.admit(ctx, group)
                if pending is not None:  # a shared state to ask (the memory backend reserves on the spot)
                    await pending
            decision = plan(group, self.groups, self.view, ctx.arrival, self.rng, ctx)
            now = ctx.arrival
            if not decision.candidates and group.queue_timeout_ms and _waits_for_headroom(decision):
                decision = await self._wait_for_headroom(group, ctx, decision)
                now = self.clock()
            outcome.plan = decision
            refusals: list[errors.UnsupportedFeature] = []
            shared = self.shared
            if group.hedge is not None:  # attempts that may overlap: dispatch_hedge.py
                if shared is not None:  # the key's counters first: hedged attempts count their quota afterwards
                    await self.governor.reserve_deferred(ctx)
                result = await race(self, group, decision, call, ctx, outcome, hold, refusals)
                if result is not None:
                    return result, outcome
            else:
                quotas, providers = self.quotas, self.providers
                for deployment in decision.candidates:
                    if outcome.attempts >= decision.max_attempts:
                        break
                    tokens = quotas.estimate(deployment, ctx.body_bytes, ctx.max_output)
                    if outcome.attempts or refusals:  # time passed since the plan (no await before the first)
                        now = self.clock()
                        if self.view.unavailable_reason(deployment, now, tokens) is not None:
                            continue  # went unavailable since the plan (the half-open probe taken, quota spent)
                        providers = self.providers  # a reload may have replaced them
                    provider = providers.get(deployment.name)
                    if provider is None:
                        continue  # removed by a reload since the plan was made
                    held = None
                    if shared is not None:  # one round trip: this deployment's shared quota (and the key's)
                        held = await shared.reserve(deployment, tokens, ctx)
                        if held is REFUSED:  # another replica took the last of it since the snapshot
                            decision.skipped.append((deployment, QUOTA, self.quotas.seconds_until_headroom(
                                deployment, self.clock(), tokens)))
                            continue
                        now = self.clock()
                    attempt, entry, share = self.begin_attempt(deployment, now, tokens, decision, outcome, held=held)
                    try:
                        result = await call(provider)
                    except BaseException as exc:
                        self.attempt_failed(deployment, attempt, entry, share, exc, group, outcome, refusals)
                        continue
                    self.attempt_won(deployment, attempt, entry, result, outcome, hold)
                    return result, outcome
            if shared is not None and ctx.admission is not None:  # no attempt reserved the key's counters
                await self.governor.reserve_deferred(ctx)
            if refusals and not outcome.failures:
                raise errors.UnsupportedFeature(
                    f"no deployment of model '{group.name}' can serve this request: "
                    + "; ".join(exc.message for exc in refusals), param=refusals[0].param)
            if self._capped and any(reason == CONCENTRATION for _, reason, _ in decision.skipped):
                self.shares.count(self.shares.refusals, group.name)
            raise exhausted_error(group.name, decision, outcome, refusals, residency=residency_words(group, ctx))
        except BaseException as exc:
            if ctx.debug_route and isinstance(exc, errors.GatewayError):
                exc.route = outcome.route()  # the error answer carries x-skyrelay-route too
            ctx.error = exc
            ctx.close()
            raise

    def begin_attempt(self, deployment: Any, now: float, tokens: int, decision: Plan, outcome: Outcome,
                      hedged: bool = False, held: Any = None) -> tuple[Attempt, tuple | None, tuple | None]:
        """Open an attempt's record and take what it holds while in flight: its quota reservation (`held`: its
        shared part, already reserved), its vendor share (capped groups), its health probe slot and its
        outstanding count."""
        ctx = outcome.context
        outcome.attempts += 1
        attempt = Attempt(deployment, now, tokens, hedged)
        attempt.held = held
        ctx.attempts.append(attempt)
        ctx.estimated_tokens = tokens
        entry = self.quotas.reserve(deployment, now, tokens)
        share = self._count_share(deployment, decision, ctx, now) if self._capped else None
        self.health.on_attempt(deployment.name, now)
        self.outstanding[deployment.name] += 1
        if self.ledger is not None:  # written ahead: the spool has the attempt before the cloud does
            self.ledger.attempt_opened(ctx, attempt, deployment.tier)
        return attempt, entry, share

    def attempt_won(self, deployment: Any, attempt: Attempt, entry: tuple | None, result: Any, outcome: Outcome,
                    hold: bool, close: bool = True) -> None:
        """The attempt that serves the request: a whole answer is settled now (unless `close` is False: a hedge
        closes it once its losers are stopped, so their records are in), a stream when it ends."""
        ctx = outcome.context
        ctx.served = attempt
        name = deployment.name
        if not hold:
            self.outstanding[name] -= 1
            end = self.clock()
            self.health.on_success(name, end)
            self.end_attempt(deployment, attempt, entry, "ok", usage=result.usage, ctx=ctx, end=end)
            ctx.usage = result.usage
        else:  # a stream keeps its slot, and waits for its verdict, until it ends (CommittedStream)
            outcome.reservation = entry
            ctx.first_output = first = self.clock()  # the stream's head is in: its TTFT
            if self.measures_latency:
                attempt.first_token = first
                self.latencies.observe_first_token(name, first, first - attempt.start)
        ctx.estimated_tokens = attempt.reserved_tokens
        outcome.deployment = deployment
        outcome.attempt = attempt
        if not hold and close:  # a stream's request ends with the stream (CommittedStream)
            ctx.close()

    def attempt_failed(self, deployment: Any, attempt: Attempt, entry: tuple | None, share: tuple | None,
                       exc: BaseException, group: Any, outcome: Outcome,
                       refusals: list[errors.UnsupportedFeature]) -> None:
        """Close a failed attempt and return when the request may fail over; raise when it may not."""
        name = deployment.name
        if isinstance(exc, errors.UpstreamError):
            self.outstanding[name] -= 1
            self.end_attempt(deployment, attempt, entry, "failed", error=exc)
            self._record_failure(name, exc)
            if not exc.retryable:
                raise exc
            outcome.failures.append((name, exc))
        elif isinstance(exc, errors.UnsupportedFeature):
            # Refused before anything was sent: says nothing about the deployment's health, spends no quota.
            self._abandon(name)
            self.end_attempt(deployment, attempt, entry, "refused", error=exc, sent=False)
            if share is not None:
                self.shares.refund(deployment.group, deployment.vendor, share)
            if group.on_unsupported != "fail_over":
                raise exc
            outcome.attempts -= 1  # no upstream call was made: it does not spend the attempt budget
            refusals.append(exc)
        elif isinstance(exc, (errors.GatewayError, asyncio.CancelledError)):
            self._abandon(name)
            self.end_attempt(deployment, attempt, entry, "abandoned", error=exc)
            raise exc
        elif isinstance(exc, Exception):
            # Not an upstream's failure but this request's (a provider's bug on this input): charging it to the
            # deployment would let one client open every breaker, and failing over would repeat it.
            self._abandon(name)
            self.end_attempt(deployment, attempt, entry, "abandoned", error=exc)
            log.error("provider for deployment %s failed on this request", name, exc_info=exc)
            raise errors.InternalError() from None
        else:  # KeyboardInterrupt, SystemExit: not this request's to handle
            self._abandon(name)
            self.end_attempt(deployment, attempt, entry, "abandoned", error=exc)
            raise exc

    def end_attempt(self, deployment: Any, attempt: Attempt, entry: tuple | None, status: str, *,
                    error: BaseException | None = None, usage: Any = None, sent: bool = True,
                    ctx: RequestContext | None = None, end: float | None = None) -> None:
        """Close the attempt's record and settle its quota reservation with the usage the cloud reported: its
        input, and its output cap when the request set one (what the clouds charge a tokens-per-minute quota
        at arrival, whatever the answer's length), else the output it reported."""
        attempt.finish(self.clock() if end is None else end, status, error)
        if status == "ok" and self.measures_latency:
            self._observe_latency(attempt, usage)
        used = None
        if usage is not None and ctx is not None:
            attempt.usage = usage
            output = ctx.max_output if ctx.max_output is not None else usage.output_tokens
            used = usage.input_tokens + output
            self.quotas.settle(deployment, entry, sent=True, used_tokens=used,
                               input_tokens=usage.input_tokens, body_bytes=ctx.body_bytes)
        else:
            self.quotas.settle(deployment, entry, sent=sent)
        if attempt.held is not None:
            self.shared.settle(attempt.held, sent, used)
        if self._waiting:
            self._headroom.set()

    def _observe_latency(self, attempt: Attempt, usage: Any) -> None:
        """A served attempt's timings: a stream's time per token after its head (its TTFT was taken when the head
        arrived), a whole answer's total time (of which TTFT is what the output's time does not explain)."""
        output = usage.output_tokens if usage is not None else 0
        latencies = self.latencies
        if attempt.first_token is None:
            latencies.observe_whole(attempt.deployment, attempt.end, attempt.end - attempt.start, output)
        elif output > 1:
            latencies.observe_tokens(attempt.deployment, attempt.end, attempt.end - attempt.first_token, output - 1)
        if output:
            latencies.observe_output(output)

    async def _wait_for_headroom(self, group: Any, ctx: RequestContext, decision: Plan) -> Plan:
        """Every deployment is at its quota: wait, in arrival order, up to the group's queue_timeout_ms for one to
        have headroom again (woken when an attempt ends, or when the earliest window frees)."""
        deadline = ctx.arrival + group.queue_timeout_ms / 1000
        lock = self._queues.get(group.name)
        if lock is None:
            lock = self._queues[group.name] = asyncio.Lock()  # FIFO: waiters are served in arrival order
        self._waiting += 1
        try:
            async with lock:
                while True:
                    now = self.clock()
                    decision = plan(group, self.groups, self.view, now, self.rng, ctx)
                    remaining = deadline - now
                    if decision.candidates or remaining <= 0 or not _waits_for_headroom(decision):
                        return decision
                    soonest = decision.soonest_available()
                    self._headroom.clear()
                    try:
                        await asyncio.wait_for(self._headroom.wait(), min(remaining, soonest or remaining))
                    except asyncio.TimeoutError:
                        pass
        finally:
            self._waiting -= 1

    def _count_share(self, deployment: Any, decision: Plan, ctx: RequestContext, now: float) -> tuple | None:
        """Count the attempt in its group's vendor shares (and as a breach when its vendor was over the cap)."""
        policy = self._capped.get(deployment.group)
        if policy is None:
            return None
        shares = self.shares
        if decision.over_cap and deployment in decision.over_cap:
            shares.count(shares.breaches, deployment.group)
        cost = 0.0
        if policy.measure == "cost":
            cost = estimated_cost(deployment, self.quotas.input_tokens(deployment, ctx.body_bytes), ctx.max_output)
        return shares.record(deployment.group, deployment.vendor, now, cost)

    def _observe_limits(self, name: str, headers: Mapping[str, str]) -> None:
        self.quotas.observe(name, self.clock(), headers)

    def _record_failure(self, name: str, exc: errors.UpstreamError) -> None:
        if not exc.cools_down:  # the client's mistake, passed through: no verdict on the deployment
            self.health.on_abandoned(name, self.clock())
            return
        throttled = isinstance(exc, errors.UpstreamRateLimited)  # a 429: a cool-down, not a breaker failure
        self.health.on_failure(name, self.clock(), retry_after=exc.retry_after if throttled else None,
                               throttled=throttled)

    def _abandon(self, name: str) -> None:
        self.outstanding[name] -= 1
        self.health.on_abandoned(name, self.clock())


def _as_spoken_by(provider: Provider, req: ChatRequest) -> ChatRequest:
    """An Anthropic client's request goes as it came to a cloud that speaks Anthropic's Messages API; any other
    gets its canonical form (converted once; raises UnsupportedFeature for what that form cannot carry)."""
    native = req.anthropic
    if native is None:
        responses = req.responses
        if responses is None or provider.speaks_responses:
            return req
        return responses.canonical(req)
    if provider.speaks_anthropic:
        return req
    return native.canonical(req)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _waits_for_headroom(decision: Plan) -> bool:
    """Some deployment was skipped only for its quota or concurrency: headroom will come back by itself."""
    return any(reason in _AT_CAPACITY for _, reason, _ in decision.skipped)


_AT_CAPACITY = (QUOTA, CONCURRENCY)


def _not_shown(anthropic_only: tuple[str, ...], provider: Provider,
               thinking: dict[int, list[dict[str, Any]]] | None) -> tuple[str, ...]:
    """What only the Anthropic family honours, less the thought summary a cloud that shows its thoughts gives and
    the sealed reasoning items (`input.reasoning`) of a cloud that takes every one back (Converse its own)."""
    if provider.shows_thoughts:
        anthropic_only = tuple(name for name in anthropic_only if name != "reasoning.summary")
    if thinking and provider.takes_thinking(thinking):
        anthropic_only = tuple(name for name in anthropic_only if name != "input.reasoning")
    return anthropic_only
