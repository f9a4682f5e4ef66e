"""One JSON line per request, written through a buffer (a flush at most every second, and at shutdown).

A line says who asked what of which deployment and how it went: never a key, a header, a prompt or a completion,
nor an error's message (an upstream's message may quote the request); only the error's class.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, BinaryIO

import orjson

FLUSH_INTERVAL = 1.0  # seconds: `tail -f` sees a line within this, and a burst is one write
BUFFER_BYTES = 64 * 1024
_DUMPS = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE


class AccessLog:
    def __init__(self, path: str | None):
        if path is None:  # stderr, through our own buffer (sys.stderr is line-buffered text)
            self._out: BinaryIO = os.fdopen(sys.stderr.fileno(), "ab", buffering=BUFFER_BYTES, closefd=False)
        else:
            self._out = open(path, "ab", buffering=BUFFER_BYTES)
        self._flusher: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        self.flush()
        self._flusher = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._tick)

    def flush(self) -> None:
        try:
            self._out.flush()
        except (OSError, ValueError):  # a full disk or a closed stderr must not take the gateway down
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
        `cost` in USD at the configured prices."""
        served = last = None
        for attempt in ctx.attempts:
            if attempt.status != "cancelled":  # a hedge race's loser: the request's end is the other attempt's
                last = attempt
            if attempt.status == "ok":
                served = attempt
        usage = ctx.usage
        record = {
            "time": int(time.time() * 1000) / 1000,  # int() then /: a third of round()'s cost
            "request_id": ctx.request_id,
            "method": "POST",  # every route that dispatches to a model group is a POST
            "path": ctx.path,
            "status": status,
            "key": ctx.key_name,  # the key's name in the configuration, never the key
            "team": ctx.team,
            "model_group": ctx.group,
            "deployment": served.deployment if served is not None else None,
            "vendor": served.vendor if served is not None else None,
            "attempts": len(ctx.attempts),
            "tried": [a.deployment for a in ctx.attempts] if len(ctx.attempts) > 1 else None,
            "hedged": ctx.hedged,
            "result": _result(ctx, last),
            "error": type(ctx.error).__name__ if ctx.error is not None else (
                last.error_kind if last is not None and last.status == "failed" else None),
            "latency_ms": int((end - ctx.arrival) * 100_000) / 100,
            "ttft_ms": int((ctx.first_output - ctx.arrival) * 100_000) / 100 if ctx.first_output is not None else None,
            "input_tokens": usage.input_tokens if usage is not None else None,
            "output_tokens": usage.output_tokens if usage is not None else None,
            "cached_tokens": usage.cached_tokens if usage is not None else None,
            "cost_usd": round(cost, 8) if cost else None,  # None: no answer, or no price configured
        }
        self._write(record)

    def unrouted(self, request: Any, status: int) -> None:
        """The line of a request answered before reaching a model group (refused, unknown model, a listing)."""
        self._write({
            "time": int(time.time() * 1000) / 1000,
            "request_id": request.id,
            "method": request.method,
            "path": request.path[:200],
            "status": status,
            "model_group": None,
            "attempts": 0,
        })

    def _write(self, record: dict) -> None:
        try:
            self._out.write(_DUMPS(record, option=_NEWLINE))
        except (OSError, ValueError):
            pass


def _result(ctx: Any, last: Any) -> str:
    """ok, error (no answer), broken (a stream cut after it began) or abandoned (the client left)."""
    if ctx.error is not None:
        return "abandoned" if isinstance(ctx.error, asyncio.CancelledError) else "error"
    if last is None:
        return "error"
    return {"ok": "ok", "failed": "broken", "abandoned": "abandoned"}.get(last.status, "error")
