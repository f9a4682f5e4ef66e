"""One JSON line per request, made off the request path.

The request path only appends a tuple of what it already holds (the context's values, its attempts list, its
usage); naming the fields, encoding the lines and writing them happen in a batch: every FLUSH_INTERVAL seconds,
as soon as BATCH_LINES are waiting, and at shutdown (close). Lines keep the order the requests ended in. A line's
fields that repeat from request to request (route, key, deployment, outcome) are encoded once and reused.
A tuple holds no context, request body or exception (only the error's class), so a prompt is never kept for it.

A line says who asked what of which deployment and how it went: never a key, a header, a prompt or a completion,
nor an error's message (an upstream's message may quote the request); only the error's class.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, BinaryIO, Callable

import orjson

FLUSH_INTERVAL = 1.0  # seconds: `tail -f` sees a line within this
BATCH_LINES = 512  # lines waiting that start a flush at the next turn of the loop, whatever the interval
BUFFER_BYTES = 64 * 1024
_DUMPS = orjson.dumps
_RESULTS = {"ok": "ok", "failed": "broken", "abandoned": "abandoned"}


class AccessLog:
    def __init__(self, path: str | None, clock: Callable[[], float] = time.monotonic):
        if path is None:  # stderr, through our own buffer (sys.stderr is line-buffered text)
            self._out: BinaryIO = os.fdopen(sys.stderr.fileno(), "ab", buffering=BUFFER_BYTES, closefd=False)
        else:
            self._out = open(path, "ab", buffering=BUFFER_BYTES)
        self._clock = clock  # the clock of the contexts' times: a request's end is on it
        self._rows: list[tuple] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._flusher = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        self.flush()
        self._flusher = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def flush(self) -> None:
        """Encode and write the lines waiting, as one write."""
        rows = self._rows
        if rows:
            self._rows = []
            try:
                self._out.write(encode(rows, time.time() - self._clock()))
            except (OSError, ValueError):  # a full disk or a closed stderr must not take the gateway down
                pass
        try:
            self._out.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self.flush()
        if self._out.fileno() != sys.stderr.fileno():
            self._out.close()

    def request(self, ctx: Any, status: int, end: float, cost: float) -> None:
        """The line of a request that reached a model group; `end` on the dispatcher's clock, as ctx's times;
        `cost` its billed USD."""
        error = ctx.error
        rows = self._rows
        rows.append((end, ctx.request_id, ctx.path, status, ctx.key_name, ctx.team, ctx.group, ctx.attempts,
                     ctx.hedged, error.__class__ if error is not None else None, ctx.arrival, ctx.first_output,
                     ctx.usage, cost))
        if len(rows) == BATCH_LINES and self._loop is not None:
            self._loop.call_soon(self.flush)

    def unrouted(self, request: Any, status: int) -> None:
        """The line of a request answered before reaching a model group (refused, unknown model, a listing)."""
        rows = self._rows
        rows.append((self._clock(), request.id, request.method, request.path[:200], status))
        if len(rows) == BATCH_LINES and self._loop is not None:
            self._loop.call_soon(self.flush)


def encode(rows: list[tuple], offset: float) -> bytes:
    """The lines of `rows` (AccessLog's tuples), `offset` turning their clock into Unix seconds."""
    return ("\n".join([_routed(row, offset) if len(row) > 5 else _unrouted(row, offset) for row in rows])
            + "\n").encode()


# The part of a line from "method" to "error" repeats for a route, key, deployment and outcome: encoded once (by
# orjson, which escapes what a name may hold) and reused. Its parts are bounded by the configuration, so the cache
# is too; emptied past _MIDDLES_MAX entries anyway, should a path ever vary.
_MIDDLES: dict[tuple, str] = {}
_MIDDLES_MAX = 4096


def _routed(row: tuple, offset: float) -> str:
    end, request_id, path, status, key, team, group, attempts, hedged, error, arrival, first_output, usage, cost = row
    served = last = None
    for attempt in attempts:
        if attempt.status != "cancelled":  # a hedge race's loser: the request's end is the other attempt's
            last = attempt
        if attempt.status == "ok":
            served = attempt
    if error is not None:
        result = "abandoned" if issubclass(error, asyncio.CancelledError) else "error"
        error = error.__name__
    else:
        result = _RESULTS.get(last.status, "error") if last is not None else "error"
        error = last.error_kind if last is not None and last.status == "failed" else None
    fixed = (path, status, key, team, group, served.deployment if served is not None else None,
             served.vendor if served is not None else None, len(attempts),
             tuple([a.deployment for a in attempts]) if len(attempts) > 1 else None, hedged, result, error)
    middle = _MIDDLES.get(fixed)
    if middle is None:
        middle = _middle(fixed)
    if usage is not None:
        tokens = f"{usage.input_tokens},\"output_tokens\":{usage.output_tokens},\"cached_tokens\":{usage.cached_tokens}"
    else:
        tokens = 'null,"output_tokens":null,"cached_tokens":null'
    # Floats by repr: the shortest form that reads back the same, valid JSON for the finite values these are.
    ttft = repr(int((first_output - arrival) * 100_000) / 100) if first_output is not None else "null"
    return (f'{{"time":{int((end + offset) * 1000) / 1000!r},"request_id":{_DUMPS(request_id).decode()},{middle},'
            f'"latency_ms":{int((end - arrival) * 100_000) / 100!r},"ttft_ms":{ttft},"input_tokens":{tokens},'
            f'"cost_usd":{repr(int(cost * 1e8 + 0.5) / 1e8) if cost else "null"}}}')  # cost >= 0: no round()


def _middle(fixed: tuple) -> str:
    path, status, key, team, group, deployment, vendor, attempts, tried, hedged, result, error = fixed
    if len(_MIDDLES) >= _MIDDLES_MAX:
        _MIDDLES.clear()
    middle = _MIDDLES[fixed] = _DUMPS({
        "method": "POST",  # every route that dispatches to a model group is a POST
        "path": path, "status": status,
        "key": key,  # the key's name in the configuration, never the key
        "team": team, "model_group": group, "deployment": deployment, "vendor": vendor, "attempts": attempts,
        "tried": tried, "hedged": hedged, "result": result, "error": error,
    }).decode()[1:-1]
    return middle


def _unrouted(row: tuple, offset: float) -> str:
    when, request_id, method, path, status = row
    return _DUMPS({"time": int((when + offset) * 1000) / 1000, "request_id": request_id, "method": method,
                   "path": path, "status": status, "model_group": None, "attempts": 0}).decode()
