"""What the request path writes to the spool: one line when an attempt opens (before the cloud is called), and at
the request's end one line per attempt not yet written and one for the request itself.

Lines are JSON arrays, positional to stay cheap (orjson encodes a tuple faster than a dict), and carry only what
the reader cannot derive (latencies are differences of the times; a one-attempt request's line leaves out all its
attempt's "o" line said):
  ["o", request_id, attempt, started_at, key_name, team, model_group, vendor, deployment, region, tier,
   estimated_input, estimated_output, streamed]                      an attempt opened, before the call
  ["r", <the columns of schema.COLUMN_NAMES, in order>]               a finished record, ready to ship
  ["k", request_id, <_ONE's fields>]                                  both records of a one-attempt request, with
                                                                      its attempt's "o" line (written before it)
  ["x", request_id, at, key_name, team, error_kind, http_status]      a request refused before any model group
and each segment starts with ["h", SPOOL_VERSION, owner, [column names]] so a later version can read it
(lines.py reads them back).
An attempt that ends before the request does (a failure, then another try) is written when the next attempt opens,
in the same append and before that next call: the same synchronous step as its end, with no await in between.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import orjson

from ..canonical import Usage
from ..routing.quotas import DEFAULT_OUTPUT_TOKENS
from .money import usage_money
from .schema import COLUMN_NAMES

log = logging.getLogger("skyrelay.ledger")

SPOOL_VERSION = 2
OPEN, RECORD, HEADER, ONE, REFUSED = "o", "r", "h", "k", "x"
# The fields of a "k" line after its request id: the reader's map of it (lines.py).
ONE_FIELDS = ("started_at", "ended_at", "attempt_ended_at", "first_output_at", "http_status", "served", "status",
              "error_kind", "attempt_status", "attempt_error_kind", "input_tokens", "cached_tokens",
              "cache_write_tokens", "output_tokens", "estimated", "list_cost_usd", "billed_cost_usd",
              "effective_cost_usd", "commitment")
_dumps = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE
_NO_MONEY = (0, 0, 0, 0, 0, 0.0, 0.0, 0.0, None)  # tokens (input, cached, cache write, output), estimated, costs


def header(owner: str) -> bytes:
    return _dumps((HEADER, SPOOL_VERSION, owner, COLUMN_NAMES), option=_NL)


class Recorder:
    """Turns contexts into spool lines. `offset` turns the dispatcher's clock (monotonic) into epoch seconds;
    `deployments` by name, for their prices; `append` is the spool's."""

    __slots__ = ("append", "offset", "deployments", "commitments", "clock")

    def __init__(self, append: Callable[[bytes], None], deployments: dict[str, Any], commitments: tuple,
                 clock: Callable[[], float]):
        self.append = append
        self.deployments = deployments
        self.commitments = commitments
        self.clock = clock
        self.offset = 0.0

    def attempt_opened(self, ctx: Any, attempt: Any, tier: int) -> None:
        """Before the call: the attempt's line (and those of earlier attempts that ended), as one append."""
        attempts = ctx.attempts
        number = len(attempts)
        out = ctx.max_output if ctx.max_output is not None else DEFAULT_OUTPUT_TOKENS
        line = _dumps((OPEN, ctx.request_id, number, attempt.start + self.offset, ctx.key_name, ctx.team, ctx.group,
                       attempt.vendor, attempt.deployment, attempt.region, tier, attempt.reserved_tokens - out, out,
                       +ctx.streamed), option=_NL)
        if number > 1:
            line = self._ended(ctx, attempts[:-1]) + line
        self.append(line)

    def request_closed(self, ctx: Any, status: int) -> None:
        """The request ended (`status`: what the client got): its attempts not yet written, and its own record."""
        end = self.clock()
        attempts = ctx.attempts
        if len(attempts) == 1 and attempts[0].status is not None and not ctx.hedged:
            self.append(self._one(ctx, attempts[0], status, end))
            return
        data = self._ended(ctx, attempts)
        self.append(data + self._request(ctx, status, end))

    def refused(self, request_id: str, principal: Any, error_kind: str | None, status: int) -> None:
        """A request answered before it reached a model group (a bad key, an unknown model, a malformed body): its
        one record, refused, with no tokens. A short line: a flood of refusals grows the spool far slower than the
        traffic a gateway serves."""
        key = team = None
        if principal is not None:
            key, team = principal.name, principal.team
        self.append(_dumps((REFUSED, request_id, self.clock() + self.offset, key, team, error_kind, status),
                           option=_NL))

    def _one(self, ctx: Any, attempt: Any, status: int, end: float) -> bytes:
        """The common case, one attempt: one line carries both records, and only what its "o" line did not say
        (lines.py joins them). The request's cost is the attempt's."""
        offset = self.offset
        first_output = ctx.first_output
        usage = attempt.usage
        if usage is not None:  # _money's first case, without its call: this runs on nearly every request
            money = money_of(self.deployments.get(attempt.deployment), usage, attempt.end + offset,
                             self.commitments, 0)
        else:
            money = self._money(ctx, attempt, first_output is not None)
        attempt.ledger = money
        ctx.cost_usd = money[6]
        attempt_status = attempt.status
        if ctx.error is None and attempt_status == "ok":
            return _dumps((ONE, ctx.request_id, ctx.arrival + offset, end + offset, attempt.end + offset,
                           first_output + offset if first_output is not None else None, status, 1, "ok", None,
                           "ok", None, *money), option=_NL)
        served = attempt_status == "ok" or first_output is not None
        reached = attempt_status != "refused"
        return _dumps((ONE, ctx.request_id, ctx.arrival + offset, end + offset, attempt.end + offset,
                       first_output + offset if first_output is not None else None, status, +served,
                       request_status(ctx, attempt if served else None, reached),
                       request_error(ctx, attempt if served else None), attempt_status, attempt.error_kind, *money),
                      option=_NL)

    def _ended(self, ctx: Any, attempts: list) -> bytes:
        data = b""
        for number, attempt in enumerate(attempts, 1):
            if attempt.ledger is None and attempt.status is not None:
                data += self._attempt(ctx, number, attempt)
        return data

    def _attempt(self, ctx: Any, number: int, attempt: Any) -> bytes:
        """The attempt's line: "r", then its columns (schema.COLUMN_NAMES)."""
        offset = self.offset
        committed = ctx.first_output is not None and attempt is (ctx.served or ctx.attempts[-1])  # the client's
        money = attempt.ledger = self._money(ctx, attempt, committed)
        end = attempt.end
        start = attempt.start
        return _dumps((RECORD, ctx.request_id, number, start + offset, end + offset, ctx.key_name, ctx.team,
                       ctx.group, attempt.vendor, attempt.deployment, attempt.region, self._tier(attempt.deployment),
                       attempt.status, attempt.error_kind, None, *money, (end - start) * 1000,
                       (ctx.first_output - start) * 1000 if committed else None, +ctx.streamed, +attempt.hedged),
                      option=_NL)

    def _money(self, ctx: Any, attempt: Any, committed: bool) -> tuple:
        """Tokens and costs of one attempt: what the cloud reported, else (when it answered, or may have, and
        said nothing) the estimate the quota reserved; a failure before any answer costs nothing."""
        usage = attempt.usage
        estimated = 0
        if usage is None:
            status = attempt.status
            if status == "ok" or status == "abandoned" or status == "cancelled" or committed:
                out = ctx.max_output if ctx.max_output is not None else DEFAULT_OUTPUT_TOKENS
                usage = Usage(attempt.reserved_tokens - out, out)
                estimated = 1
            else:
                return _NO_MONEY
        return money_of(self.deployments.get(attempt.deployment), usage, attempt.end + self.offset,
                        self.commitments, estimated)

    def _tier(self, name: str) -> int | None:
        deployment = self.deployments.get(name)
        return deployment.tier if deployment is not None else None

    def _request(self, ctx: Any, status: int, end: float) -> bytes:
        served = None
        tokens_in = cached = written = tokens_out = estimated = 0
        listed = billed = effective = 0.0
        commitment = None
        reached = False
        for attempt in ctx.attempts:
            money = attempt.ledger
            if money is None:
                continue
            if attempt.status != "refused":
                reached = True
            if attempt.status == "ok":
                served = attempt
            tokens_in += money[0]
            cached += money[1]
            written += money[2]
            tokens_out += money[3]
            estimated |= money[4]
            listed += money[5]
            billed += money[6]
            effective += money[7]
            commitment = money[8] or commitment
        if served is None and ctx.first_output is not None and ctx.attempts:
            served = ctx.served or ctx.attempts[-1]  # a stream that broke or was left after it began
        ctx.cost_usd = billed
        offset = self.offset
        return _dumps((
            RECORD, ctx.request_id, 0, ctx.arrival + offset, end + offset, ctx.key_name, ctx.team, ctx.group,
            served.vendor if served is not None else None, served.deployment if served is not None else None,
            served.region if served is not None else None,
            self._tier(served.deployment) if served is not None else None,
            request_status(ctx, served, reached), request_error(ctx, served), status,
            tokens_in, cached, written, tokens_out, estimated, listed, billed, effective, commitment,
            (end - ctx.arrival) * 1000,
            (ctx.first_output - ctx.arrival) * 1000 if ctx.first_output is not None else None,
            +ctx.streamed, +ctx.hedged), option=_NL)


def money_of(deployment: Any, usage: Any, when: float, commitments: tuple, estimated: int) -> tuple:
    """(input, cached, cache write, output tokens, estimated, list, billed, effective, commitment) of a usage at
    `when` (epoch seconds). A deployment gone from the configuration since (a recovered record): tokens, no price."""
    if deployment is not None:
        try:
            return usage_money(deployment, usage, when, commitments, estimated)
        except Exception:  # a pricing bug must not fail the request: the tokens are kept, the costs are zero
            log.exception("cannot price a ledger record of deployment %s", deployment.name)
    return (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens, estimated,
            0.0, 0.0, 0.0, None)


def request_status(ctx: Any, served: Any, reached: bool) -> str:
    error = ctx.error
    if error is None:
        return served.status if served is not None and served.status in ("ok", "failed", "abandoned") else "ok"
    if type(error).__name__ == "CancelledError":
        return "abandoned"
    return "failed" if reached else "refused"


def request_error(ctx: Any, served: Any) -> str | None:
    if ctx.error is not None:
        return type(ctx.error).__name__
    if served is not None and served.status != "ok":
        return served.error_kind
    return None
