"""One JSON line per request, made off the request path.

The request path only appends a tuple of what it already holds (the context's values, its attempts list, its
usage); naming the fields, encoding the lines and writing them happen in a batch: every FLUSH_INTERVAL seconds,
as soon as BATCH_LINES are waiting, and at shutdown (close). Lines keep the order the requests ended in.
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
# A record's first key: `},{"time":` marks the boundary between two records of one encoded list and nothing else
# (a quote inside a JSON string is always escaped, and no field holds an object), so a batch is one dumps call.
_BOUNDARY, _NEWLINE = b'},{"time":', b'}\n{"time":'
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
    records = [_routed(row, offset) if len(row) > 5 else _unrouted(row, offset) for row in rows]
    return _DUMPS(records)[1:-1].replace(_BOUNDARY, _NEWLINE) + b"\n"


def _routed(row: tuple, offset: float) -> dict:
    end, request_id, path, status, key, team, group, attempts, hedged, error, arrival, first_output, usage, cost = row
    if len(attempts) == 1:  # the common case, without the loop
        last = attempts[0]
        state = last.status
        served = last if state == "ok" else None
        if state == "cancelled":
            last = None
        tried = None
    else:
        served = last = None
        for attempt in attempts:
            if attempt.status != "cancelled":  # a hedge race's loser: the request's end is the other attempt's
                last = attempt
            if attempt.status == "ok":
                served = attempt
        tried = [a.deployment for a in attempts]
    if error is not None:
        result = "abandoned" if issubclass(error, asyncio.CancelledError) else "error"
        error = error.__name__
    elif last is None:
        result = "error"
    else:
        result = _RESULTS.get(last.status, "error")
        error = last.error_kind if last.status == "failed" else None
    return {
        "time": int((end + offset) * 1000) / 1000,  # int() then /: a third of round()'s cost
        "request_id": request_id,
        "method": "POST",  # every route that dispatches to a model group is a POST
        "path": path,
        "status": status,
        "key": key,  # the key's name in the configuration, never the key
        "team": team,
        "model_group": group,
        "deployment": served.deployment if served is not None else None,
        "vendor": served.vendor if served is not None else None,
        "attempts": len(attempts),
        "tried": tried,
        "hedged": hedged,
        "result": result,
        "error": error,
        "latency_ms": int((end - arrival) * 100_000) / 100,
        "ttft_ms": int((first_output - arrival) * 100_000) / 100 if first_output is not None else None,
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "cached_tokens": usage.cached_tokens if usage is not None else None,
        "cost_usd": int(cost * 1e8 + 0.5) / 1e8 if cost else None,  # cost >= 0; None: nothing billed
    }


def _unrouted(row: tuple, offset: float) -> dict:
    when, request_id, method, path, status = row
    return {"time": int((when + offset) * 1000) / 1000, "request_id": request_id, "method": method, "path": path,
            "status": status, "model_group": None, "attempts": 0}
