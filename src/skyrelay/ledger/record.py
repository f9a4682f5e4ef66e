"""What the request path writes to the spool: one line when an attempt opens (before the cloud is called), and at
the request's end one line per attempt not yet written and one for the request itself.

Lines are JSON arrays, positional to stay cheap (orjson encodes a tuple faster than a dict):
  ["o", request_id, attempt, started_at, key_name, team, model_group, vendor, deployment, region, tier,
   estimated_input, estimated_output, streamed]                      an attempt opened, before the call
  ["r", <the columns of schema.COLUMN_NAMES, in order>]               a finished record, ready to ship
  ["q", <the request's columns>, <its one attempt's own: started_at, ended_at, status, error_kind, latency_ms,
   ttft_ms, hedged, vendor, deployment, region, tier>]                  both records of a one-attempt request
and each segment starts with ["h", SPOOL_VERSION, owner, [column names]] so a later version can read it.
An attempt that ends before the request does (a failure, then another try) is written when the next attempt opens,
in the same append and before that next call: the same synchronous step as its end, with no await in between.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Callable

import orjson

from ..canonical import Usage
from ..routing.quotas import DEFAULT_OUTPUT_TOKENS
from .money import record_costs
from .schema import COLUMN_NAMES

log = logging.getLogger("skyrelay.ledger")

SPOOL_VERSION = 1
OPEN, RECORD, HEADER, ALONE = "o", "r", "h", "q"
_dumps = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE
_UTC = datetime.timezone.utc
_FREE = (0.0, 0.0, 0.0, None)
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
        if len(attempts) == 1 and attempts[0].status is not None:
            self.append(self._alone(ctx, attempts[0], status, end))
            return
        data = self._ended(ctx, attempts)
        self.append(data + self._request(ctx, status, end))

    def _alone(self, ctx: Any, attempt: Any, status: int, end: float) -> bytes:
        """The common case, one attempt: one line carries both records (decode_lines makes two of it): the
        request's columns, then the attempt's own values (_OWN). Written out in full rather than built from the
        attempt's row: this runs once per request."""
        offset = self.offset
        first_output = ctx.first_output
        money = attempt.ledger = self._money(ctx, attempt, first_output is not None)
        start, finish = attempt.start, attempt.end
        name = attempt.deployment
        deployment = self.deployments.get(name)
        tier = deployment.tier if deployment is not None else None
        served = attempt.status == "ok" or first_output is not None
        if ctx.error is None and attempt.status == "ok":
            state, error = "ok", None
        else:
            state = request_status(ctx, attempt if served else None, attempt.status != "refused")
            error = request_error(ctx, attempt if served else None)
        ctx.cost_usd = money[6]
        return _dumps((
            ALONE, ctx.request_id, 0, ctx.arrival + offset, end + offset, ctx.key_name, ctx.team, ctx.group,
            attempt.vendor if served else None, name if served else None, attempt.region if served else None,
            tier if served else None, state, error, status, *money, (end - ctx.arrival) * 1000,
            (first_output - ctx.arrival) * 1000 if first_output is not None else None, +ctx.streamed, +ctx.hedged,
            start + offset, finish + offset, attempt.status, attempt.error_kind, (finish - start) * 1000,
            (first_output - start) * 1000 if first_output is not None else None, +attempt.hedged,
            attempt.vendor, name, attempt.region, tier), option=_NL)

    def _ended(self, ctx: Any, attempts: list) -> bytes:
        data = b""
        for number, attempt in enumerate(attempts, 1):
            if attempt.ledger is None and attempt.status is not None:
                data += self._attempt(ctx, number, attempt)
        return data

    def _attempt(self, ctx: Any, number: int, attempt: Any) -> bytes:
        return _dumps(self._attempt_row(ctx, number, attempt), option=_NL)

    def _attempt_row(self, ctx: Any, number: int, attempt: Any) -> list:
        """The attempt's line as a list: "r", then its columns (schema.COLUMN_NAMES)."""
        offset = self.offset
        committed = ctx.first_output is not None and attempt is ctx.attempts[-1]  # the stream the client got
        money = attempt.ledger = self._money(ctx, attempt, committed)
        end = attempt.end
        start = attempt.start
        deployment = self.deployments.get(attempt.deployment)
        return [RECORD, ctx.request_id, number, start + offset, end + offset, ctx.key_name, ctx.team, ctx.group,
                attempt.vendor, attempt.deployment, attempt.region, deployment.tier if deployment else None,
                attempt.status, attempt.error_kind, None, *money, (end - start) * 1000,
                (ctx.first_output - start) * 1000 if committed else None, +ctx.streamed, +attempt.hedged]

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
            served = ctx.attempts[-1]  # a stream that broke or was left after it began
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
    """(input, cached, cache write, output tokens, estimated, list, billed, effective, commitment) of a usage."""
    costs = _FREE
    if deployment is not None:  # else gone from the configuration since (a recovered record): tokens, no price
        try:
            last = _last_second
            moment = last[1] if last[0] == int(when) else _datetime(when)
            costs = record_costs(deployment, usage, moment, commitments)
        except Exception:  # a pricing bug must not fail the request: the tokens are kept, the costs are zero
            log.exception("cannot price a ledger record of deployment %s", deployment.name)
    return (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens, estimated,
            *costs)


_last_second = (0, datetime.datetime.fromtimestamp(0, _UTC))


def _datetime(when: float) -> datetime.datetime:
    """`when` to the second, as a UTC datetime: made once a second (prices change by the hour at most)."""
    global _last_second
    second = int(when)
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, datetime.datetime.fromtimestamp(second, _UTC))
    return last[1]


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


def decode_lines(data: bytes, columns: tuple = COLUMN_NAMES):
    """The spool lines in `data`, decoded; each segment's header line sets the columns its records carry. The
    zero bytes of a segment's unwritten tail (or of pages a power loss never wrote) are skipped, and so is any
    torn line."""
    for raw in data.split(b"\n"):
        raw = raw.strip(b"\0")
        if not raw:
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("skipped a torn line in the ledger spool (%d bytes)", len(raw))
            continue
        kind = line[0]
        if kind == HEADER:
            columns = tuple(line[3])
            if columns == COLUMN_NAMES:
                columns = COLUMN_NAMES  # the same object: the fast paths below test identity
            continue
        if kind == ALONE:
            width = len(columns) + 1
            attempt = _one_attempt(line[1:width], line[width:], columns)
            line[0] = RECORD
            del line[width:]
            if columns is not COLUMN_NAMES:
                line = [RECORD, *_remap(line[1:], columns)]
            yield [RECORD, *_remap(attempt, columns)] if columns is not COLUMN_NAMES else [RECORD, *attempt]
        elif kind == RECORD and columns is not COLUMN_NAMES:
            line = [RECORD, *_remap(line[1:], columns)]
        yield line


_OWN = ("started_at", "ended_at", "status", "error_kind", "latency_ms", "ttft_ms", "hedged", "vendor", "deployment",
        "region", "tier")


def _one_attempt(request: list, own: list, columns: tuple) -> list:
    """The attempt record folded into a "q" line: the request's, with the attempt's own values."""
    places = _PLACES if columns is COLUMN_NAMES else _places(columns)
    attempt = request[:]
    attempt[places[0]] = 1
    attempt[places[1]] = None  # http_status: the request's
    for place, value in zip(places[2:], own):
        attempt[place] = value
    return attempt


def _places(columns: tuple) -> tuple[int, ...]:
    position = {name: index for index, name in enumerate(columns)}
    return tuple(position[name] for name in ("attempt", "http_status", *_OWN))


_PLACES = _places(COLUMN_NAMES)


def _remap(values: list, columns: tuple) -> list:
    """A record written under another column list, in this version's (a column it lacks takes its default)."""
    by_name = dict(zip(columns, values))
    return [by_name.get(name, 0) for name in COLUMN_NAMES]
