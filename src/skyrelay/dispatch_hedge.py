"""Hedged attempts: a request still without output after its group's hedge delay gets a second attempt at
another vendor's deployment; the first to produce output serves, the other is cancelled.

Only groups with `hedge:` come here (dispatch.py keeps the plain loop for the rest). Each attempt is a task and
keeps the plain loop's rules: its quota reservation, vendor share, health probe slot, and failover to the next
candidate when it fails (retryable). A hedge goes to the first candidate, in plan order, of a vendor no attempt in
flight belongs to and available now (residency, breaker, quota: the planner's verdicts, checked again), within the
group's max_attempts. The loser is cancelled, which closes its upstream connection, and recorded as "cancelled":
its quota keeps its estimate (or the usage it reported, when it finished in the same instant), its vendor share
stays counted (it was sent), and its health gets no verdict: it was stopped, not failed.
"Output" is a stream's head (dispatch_stream.stream_head), and for a whole answer the answer itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from .dispatch import Dispatcher, Outcome


class _Running:
    __slots__ = ("deployment", "attempt", "entry", "share")

    def __init__(self, deployment: Any, attempt: Any, entry: tuple | None, share: tuple | None):
        self.deployment = deployment
        self.attempt = attempt
        self.entry = entry
        self.share = share


async def race(dispatcher: Dispatcher, group: Any, decision: Any, call: Callable[[Any], Awaitable[Any]],
               ctx: Any, outcome: Outcome, hold: bool, refusals: list) -> Any:
    """The result of the attempt that served, or None when no candidate is left (the caller then builds the
    error from the outcome's failures and the refusals). Raises what the plain loop raises."""
    pending = list(decision.candidates)
    running: dict[asyncio.Task, _Running] = {}
    loop = asyncio.get_running_loop()
    hedge_at: float | None = None  # loop time to hedge the attempt in flight at; None: it is not hedged
    won = False
    try:
        while True:
            if not running:  # the first attempt, or the next after every one in flight failed
                first = _start(dispatcher, pending, decision, call, outcome, running, None)
                if first is None:
                    return None
                delay = hedge_delay(dispatcher, group.hedge, first.deployment.name, ctx, hold)
                hedge_at = None if delay is None else loop.time() + delay
            timeout = None if hedge_at is None else max(0.0, hedge_at - loop.time())
            done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # no output yet: hedge, once for this attempt
                hedge_at = None
                vendors = {r.deployment.vendor for r in running.values()}
                if _start(dispatcher, pending, decision, call, outcome, running, vendors) is not None:
                    ctx.hedged = True
                continue
            winner = next((task for task in done if not task.cancelled() and task.exception() is None), None)
            for task in done:
                if task is not winner:
                    failed = running.pop(task)
                    exc = asyncio.CancelledError() if task.cancelled() else task.exception()
                    if winner is None:  # may raise (a failure that must not fail over): the finally cleans up
                        dispatcher.attempt_failed(failed.deployment, failed.attempt, failed.entry, failed.share,
                                                  exc, group, outcome, refusals)
                    else:
                        _record_beside_winner(dispatcher, failed, exc, group, outcome, refusals)
            if winner is not None:
                served = running.pop(winner)
                won = True
                dispatcher.attempt_won(served.deployment, served.attempt, served.entry, winner.result(), outcome,
                                       hold, close=not running)
                if running:  # the losers' records go in before the request's (which sums them), and its budget
                    try:
                        await _stop(dispatcher, running, ctx, hold, "cancelled")
                    finally:
                        if not hold:
                            ctx.close()
                return winner.result()
    finally:
        if running:
            await _stop(dispatcher, running, ctx, hold, "cancelled" if won else "abandoned")


def hedge_delay(dispatcher: Dispatcher, hedge: Any, name: str, ctx: Any, hold: bool) -> float | None:
    """Seconds to wait for output before hedging an attempt at `name`. With after_percentile, its recent time to
    first token at that percentile (plus, for a whole answer, the expected output at its time per token); None
    while it has no recent samples: nothing says yet what is late for it."""
    if hedge.after_ms is not None:
        return hedge.after_ms / 1000
    now = dispatcher.clock()
    view = dispatcher.view
    delay = view.ttft_percentile(name, now, hedge.after_percentile)
    if delay is not None and not hold:
        delay += view.time_per_token(name, now) * view.expected_output(ctx)
    return delay


def _start(dispatcher: Dispatcher, pending: list, decision: Any, call: Callable, outcome: Outcome,
           running: dict, other_than: set[str] | None) -> _Running | None:
    """Start the next candidate still available (for a hedge: of a vendor not in `other_than`), within the
    attempt budget; None when there is none. A candidate found unavailable is dropped, as in the plain loop."""
    ctx = outcome.context
    index = 0
    while index < len(pending) and outcome.attempts < decision.max_attempts:
        deployment = pending[index]
        if other_than is not None and deployment.vendor in other_than:
            index += 1
            continue
        del pending[index]
        tokens = dispatcher.quotas.estimate(deployment, ctx.body_bytes, ctx.max_output)
        now = dispatcher.clock()
        provider = dispatcher.providers.get(deployment.name)  # None: removed by a reload since the plan
        if provider is None or dispatcher.view.unavailable_reason(deployment, now, tokens) is not None:
            continue
        attempt, entry, share = dispatcher.begin_attempt(deployment, now, tokens, decision, outcome,
                                                         hedged=other_than is not None)
        if dispatcher.shared is not None:  # replicas on Redis: counted in the shared quota as it goes
            dispatcher.shared.count_later(deployment, tokens, ctx, attempt)
        task = asyncio.ensure_future(_call(call, provider))
        started = running[task] = _Running(deployment, attempt, entry, share)
        return started
    return None


async def _call(call: Callable, provider: Any) -> Any:
    return await call(provider)  # in a coroutine: what `call` raises before awaiting lands in the task too


def _record_beside_winner(dispatcher: Dispatcher, failed: _Running, exc: BaseException, group: Any,
                          outcome: Outcome, refusals: list) -> None:
    """An attempt that failed in the same instant another one answered: recorded like any failure, never
    raised (the request is served)."""
    try:
        dispatcher.attempt_failed(failed.deployment, failed.attempt, failed.entry, failed.share, exc, group,
                                  outcome, refusals)
    except BaseException:  # noqa: BLE001 - what it would have raised is moot: the other attempt served
        pass


async def _stop(dispatcher: Dispatcher, running: dict, ctx: Any, hold: bool, status: str) -> None:
    """Cancel the attempts still in flight (closing their upstream connections) and close their records: no
    health verdict; the quota keeps the estimate, or the usage of one that answered in the meantime."""
    tasks = list(running)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        loser = running.pop(task)
        name = loser.deployment.name
        usage = None
        if not task.cancelled() and task.exception() is None:  # it answered while being cancelled
            result = task.result()
            if hold:
                await result[1].aclose()  # a stream's rest: closes its connection
            else:
                usage = result.usage
        dispatcher.outstanding[name] -= 1
        dispatcher.health.on_abandoned(name, dispatcher.clock())
        dispatcher.end_attempt(loser.deployment, loser.attempt, loser.entry, status, usage=usage,
                               ctx=ctx if usage is not None else None)
