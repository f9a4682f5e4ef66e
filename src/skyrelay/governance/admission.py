"""Enforcement: a key's models, then its (and its team's) rate limits and budgets, reserved before the call.

Every counter a request touches is reserved at once, all or nothing, with the request's estimate: 1 request,
its estimated tokens (the routing quotas' estimate: input from the body's size, plus max_tokens or the default
output cap), 1 slot in flight, and its estimated cost at the dearest price among the group's deployments. When
the request ends its reservation is settled with what it really used, priced at the deployment that served it.
Concurrent requests therefore each hold their estimate while in flight and cannot all slip under a limit.

With routing quotas shared over Redis (`defers`), `admit` reserves nothing: the request's first attempt reserves
the key's counters together with its deployment's quota in one script call (dispatch_shared.py), so a request
costs one round trip; `refuse` turns a refusal of the key's part into its error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from functools import partial
from typing import Any, Awaitable, Callable

from .. import errors
from ..pricing import cost_micro_usd, dearest
from ..routing.quotas import DEFAULT_OUTPUT_TOKENS
from ..runtime import stop_loop
from ..state import Item, MemoryState, Reservation
from ..state.memory import Plan
from . import periods
from .headers import refusal_headers
from .principals import PARALLEL, REQUESTS, TOKENS, USD, KeyBook, Principal
from .registry import REVOKED, Registry
from .seeding import added_counters, redis_seeds, seed_added, seed_budgets

log = logging.getLogger("skyrelay.governance")

FLAGS_REFRESH_S = 1.0  # how soon a revocation written by another replica is seen here
STEADY = (REQUESTS,)  # what a settle never changes: a request counts once (so its rpm counters are not walked)


class KeyRateLimited(errors.RateLimited):
    """A key's or team's own limit, with OpenAI's `type` naming what ran out (requests or tokens)."""

    def __init__(self, message: str, *, retry_after: float | None, type: str, code: str = "rate_limit_exceeded"):
        super().__init__(message, retry_after=retry_after, code=code)
        self.type = type


class Admission:
    """A request's hold on its key's counters through the state's `reservation` (None until reserved: deferred to
    the first attempt, `defers`), settled once when its context closes. `values` are the reserved
    `(1, tokens, 1, cost)`, `amounts` them picked for `items`. (The memory backend's is a PlannedAdmission.)"""

    __slots__ = ("governor", "reservation", "now", "items", "amounts", "values")
    plan = None  # (a PlannedAdmission's: what the rate-limit headers test)

    def __init__(self, governor: "Governor", reservation: Reservation | None, now: float, items: list[Item],
                 amounts, values: tuple):
        self.governor = governor
        self.reservation = reservation
        self.now = now  # when it was reserved
        self.items = items
        self.amounts = amounts
        self.values = values

    def settle(self, ctx: Any) -> None:
        """Called once (RequestContext.close runs once). A deferred admission no attempt reserved holds nothing."""
        if self.reservation is None:
            return
        governor = self.governor
        values = settled_values(governor, ctx, self.values)
        governor.state.settle(self.reservation, ctx.principal.amounts(values), governor.clock())


class PlannedAdmission:
    """The memory backend's hold: the key's `plan` (its counters, resolved once) and the `marks` its take left (the
    window entries it added to), settled by the plan itself, with no Reservation made, no amounts picked and no
    clock read. The fewer slots the cheaper: one is made per governed request."""

    __slots__ = ("governor", "now", "values", "plan", "marks")
    reservation = None  # (never reserved through the state's interface)

    def __init__(self, governor: "Governor", now: float, values: tuple, plan: Plan, marks: list):
        self.governor = governor
        self.now = now
        self.values = values
        self.plan = plan
        self.marks = marks

    def settle(self, ctx: Any) -> None:
        """Called once (RequestContext.close runs once)."""
        reserved = self.values
        self.plan.settle(self.marks, reserved, settled_values(self.governor, ctx, reserved))


REFUNDED = (1, 0, 0, 0)  # a request counts once; its slot in flight, tokens and cost are given back


def settled_values(governor: "Governor", ctx: Any, reserved: tuple) -> tuple:
    """The real `(1, tokens, 0, cost)` of a request that reserved `reserved`: the usage the cloud reported, priced
    at the deployment that served. Without a usage report, a request that served output or that the client left
    (the cloud may have produced, and charged, part of it) keeps its estimate; one that failed everywhere before
    any output is refunded. Its slot in flight is given back either way."""
    usage = ctx.usage
    if usage is not None and ctx.attempts:
        served = ctx.served or ctx.attempts[-1]  # (a hedge's loser, cancelled, may come after the one that served)
        price = governor.served_prices.get(served.deployment)
        cost = 0 if price is None else cost_micro_usd(price, usage.input_tokens, usage.output_tokens,
                                                        usage.cached_tokens, usage.cache_write_tokens)
        return (1, usage.input_tokens + usage.output_tokens, 0, cost)
    # Served without a usage report (a stream that broke after output, a cloud that reports none) or left by the
    # client: the cloud produced, and charged, some of it. The ledger records the estimate then; so does this.
    if ctx.first_output is not None or any(attempt.status in _CHARGED for attempt in ctx.attempts):
        return (1, reserved[1], 0, reserved[3])  # the estimate's tokens and cost
    return REFUNDED


_CHARGED = ("ok", "abandoned")  # an attempt's end after which the cloud bills what it produced


class Governor:
    def __init__(self, config: Any, state: Any, input_tokens: Callable[[Any, int], int],
                 clock: Callable[[], float] = time.time):
        self.keys = KeyBook(config.keys, config.teams)
        self.state = state
        self.clock = clock
        self._input_tokens = input_tokens  # the routing quotas' guess from the body's size (Quotas.input_tokens)
        self.served_prices: dict[str, Any] = {}
        self.reprice(config)
        self._refresh: asyncio.Task | None = None
        self._seeding: asyncio.Task | None = None
        self._seeding_added: set[asyncio.Task] = set()  # seeds of budgets added while running (seed_added)
        self._closing = False
        self.registry = Registry(config, self.keys, state)
        self._memory = state if isinstance(state, MemoryState) else None
        self.defers = False  # True: the first attempt reserves the key's counters with its deployment's quota

    def reprice(self, config: Any) -> None:
        """The prices budgets are reserved and settled at: from the model groups (again after a reload)."""
        self._prices = {name: dearest(group.deployments) for name, group in config.model_groups.items()}
        # A deployment a reload removed keeps its last price, for its requests still in flight (its cloud bills them).
        self.served_prices = {**self.served_prices, **{d.name: d.price for d in config.deployments()}}

    # --- the request path --------------------------------------------------------------------------------------

    def admit(self, ctx: Any, group: Any) -> Awaitable[None] | None:
        """Refuse (403, 429) or reserve; the reservation hangs on the context until it closes. On the memory
        backend this is done on return (no coroutine to make and await on every request); on the others it
        returns what to await. With `defers`, the first attempt reserves (with its deployment's quota)."""
        principal: Principal = ctx.principal
        if principal.models is not None and group.name not in principal.models:
            raise errors.PermissionDenied(
                f"API key '{principal.name}' may not use model '{group.name}'; it may use: "
                f"{', '.join(sorted(principal.models)) or 'none'}", param="model", code="model_not_allowed")
        if not principal.metrics:
            return None
        max_output = ctx.max_output
        output = DEFAULT_OUTPUT_TOKENS if max_output is None else max_output
        input_tokens = self._input_tokens(group.deployments[0], ctx.body_bytes)
        tokens = input_tokens + output  # as Quotas.estimate, without its call
        input_price, output_price = self._prices[group.name]
        cost = math.ceil(input_tokens * input_price + output * output_price)  # $/Mtok is micro-$ per token
        now = self.clock()
        if principal.rolls_at and now >= principal.rolls_at:  # first use (-1), or a budget's period ended
            principal.roll(now)
        items = principal.items
        values = (1, tokens, 1, cost)
        memory = self._memory  # (never with `defers`: that is Redis)
        if memory is not None:  # the plan picks each counter's amount from `values`: no list of amounts made
            plan = principal.plan
            if plan is None:  # the key's cells, resolved once (again when a budget's period rolls)
                plan = principal.plan = memory.plan(items, principal.metrics, STEADY)
            marks = plan.take(values, now)
            if marks is None:
                wait, refused = plan.refusal(items, values, now)
                self.refuse(ctx, items, values, refused, wait)
            ctx.admission = PlannedAdmission(self, now, values, plan, marks)
            return None
        amounts = principal.amounts(values)
        if self.defers:
            ctx.admission = Admission(self, None, now, items, amounts, values)
            return None
        return self._reserve(ctx, items, amounts, values, now)

    async def _reserve(self, ctx: Any, items: list[Item], amounts, values: tuple, now: float) -> None:
        reservation, wait, refused = await self.state.reserve(items, amounts, now)
        if reservation is None:
            self.refuse(ctx, items, values, refused, wait)
        ctx.admission = Admission(self, reservation, now, items, amounts, values)

    async def reserve_deferred(self, ctx: Any) -> None:
        """A deferred admission that no attempt reserved (no deployment could be tried): reserved alone, so the
        key's limits still count the request and still refuse it first."""
        admission = ctx.admission
        if admission is None or admission.reservation is not None:
            return
        reservation, wait, refused = await self.state.reserve(admission.items, admission.amounts, self.clock())
        if reservation is None:
            self.refuse(ctx, admission.items, admission.values, refused, wait)
        admission.reservation = reservation

    @staticmethod
    def refuse(ctx: Any, items: list[Item], values: tuple, refused: int, wait: float) -> None:
        """Raise the refusal of the key's (or its team's) counter `refused`."""
        principal = ctx.principal
        limit = principal.limits[refused]
        err = _refusal(limit, items[refused], values[principal.metrics[refused]], wait)
        if limit.metric in (REQUESTS, TOKENS):
            err.headers = refusal_headers(ctx, limit.metric, limit.limit, wait)
        raise err

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.state.start()
        self.registry.start()
        if self._refresh is None:  # also without keys yet: the admin API may create some
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_flags())

    def seed_from(self, shipper: Any, database: Any) -> None:
        """Seed the budgets from the ledger (seeding.py): the memory backend's once the ledger's shipper has
        adopted the dead processes' spools (its counters begin empty with this process or its supervisor),
        Redis's whenever a replica finds Redis empty."""
        if hasattr(self.state, "seeder"):
            self.state.seeder = partial(redis_seeds, self, shipper, database)
        elif getattr(self.state, "seed", None) is not None and self._seeding is None:
            self._seeding = asyncio.get_running_loop().create_task(seed_budgets(self, shipper.adopted, database))
        if getattr(self.state, "seed_budget", None) is not None:
            self.registry.on_rebuilt = partial(self._keys_changed, shipper, database)

    def _keys_changed(self, shipper: Any, database: Any, before: list, after: list) -> None:
        """The admin API's keys and teams were read again (Registry): the budgets they added are seeded."""
        added = added_counters(before, after, time.time())
        if added:
            task = asyncio.get_running_loop().create_task(seed_added(self, added, shipper, database))
            self._seeding_added.add(task)
            task.add_done_callback(self._seeding_added.discard)

    async def seeded(self) -> int:
        """Wait for the budgets' seeding (started by seed_from) to end; how many counters it seeded."""
        return 0 if self._seeding is None else await asyncio.shield(self._seeding)

    async def seeded_added(self) -> int:
        """Wait for the seeds of budgets added while running (seed_added) under way now; how many they seeded."""
        done = await asyncio.gather(*(asyncio.shield(task) for task in list(self._seeding_added)))
        return sum(done)

    async def _refresh_flags(self) -> None:
        """Revocations written by any replica, read here off the request path (until `aclose`: a flag as well as
        the cancel, see runtime.stop_loop)."""
        while not self._closing:
            try:
                flags = await self.state.flags()
            except Exception:  # noqa: BLE001 - Redis down: keep the last known set, the heartbeat says so
                pass
            else:
                self.keys.set_flagged(frozenset(f[len(REVOKED):] for f in flags if f.startswith(REVOKED)))
            await asyncio.sleep(FLAGS_REFRESH_S)

    async def aclose(self) -> None:
        self._closing = True
        await stop_loop(self._refresh, "revocation refresh", log)
        self._refresh = None
        if self._seeding is not None and not self._seeding.done():
            await stop_loop(self._seeding, "budget seeding", log)
        self._seeding = None
        for task in list(self._seeding_added):
            await stop_loop(task, "budget seeding", log)
        await self.registry.aclose()
        await self.state.aclose()


def _refusal(limit, item: Item, amount: float, wait: float) -> errors.RateLimited:
    owner, metric = limit.owner, limit.metric
    if metric == USD:
        period = limit.period
        per = "in total" if period == "total" else f"per {period}"
        return KeyRateLimited(
            f"budget of {owner} exhausted: ${limit.limit / 1_000_000:.2f} {per} (this request's estimate, "
            f"${amount / 1_000_000:.4f}, does not fit); {periods.describe_reset(item.reset_at)}",
            retry_after=wait if item.reset_at else None, type="insufficient_quota", code="insufficient_quota")
    if metric == PARALLEL:
        return KeyRateLimited(f"rate limit of {owner} reached: {limit.limit} requests in flight at once "
                              "(max_parallel)", retry_after=wait, type=REQUESTS)
    unit = "requests" if metric == REQUESTS else "tokens"
    return KeyRateLimited(f"rate limit of {owner} reached: {limit.limit} {unit} per minute; retry in "
                          f"{max(1, round(wait))}s", retry_after=wait, type=unit)
