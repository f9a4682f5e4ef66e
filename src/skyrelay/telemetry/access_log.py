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
_FRAGMENT = orjson.Fragment  # JSON written as it is, in place of a value
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# orjson writes each line from a 9-key dict (tests/unit/telemetry/test_access_log_bytes.py pins the bytes): the
# numbers and the request id, which change on every line, around one pre-encoded fragment, written as the value of
# "method", that holds everything from the method to the error. Names from the configuration (keys, teams, model
# groups, deployments, vendors, routes' paths, error classes) repeat on every line, so their JSON is cached, and so
# is the whole fragment of a line answered at its one attempt; a name or a fragment first seen once its cache is
# full is encoded every time, which is only slower. An unrouted line's path and method are the client's own: never
# kept. Floats are rounded as they always were (int() then /: a third of round()'s cost; // 1 for the time and
# the cost, never negative, where floor is trunc and a call less), in orjson's notation.
_JSON: dict = {None: "null"}
_WHERE: dict = {}  # (deployment, vendor): their fragment
_ANSWERED: dict = {}  # (path, status, key, team, model group, deployment, vendor) -> a one-answer line's fragment
_JSON_LIMIT = 4096
_ONE_ANSWER = ',"attempts":1,"tried":null,"hedged":false,"result":"ok","error":null'
_NO_DEPLOYMENT = ',"deployment":null,"vendor":null'
_RESULTS = {"ok": "ok", "failed": "broken", "abandoned": "abandoned"}
# A routed line's fields, in order, around the fragment written as the value of "method".
_REQUEST_FIELDS = ("time", "request_id", "method", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
                   "cached_tokens", "cost_usd")


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
            offset = time.time() - self._clock()
            try:
                data = encode(rows, offset)
            except (TypeError, ValueError):  # a name JSON cannot hold (a lone surrogate): lose its line, not all
                data = b"".join(_each_line(rows, offset))
            try:
                self._out.write(data)
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
    # One growing buffer: each line's bytes are freed as soon as copied, so the next line's reuse their memory (a
    # batch's 512 lines kept apart until a join made the heap grow and shrink by half a megabyte, page faults a
    # count of instructions does not show: the batch took twice the time).
    out = bytearray()
    answered = _ANSWERED.get
    fields = dict.fromkeys(_REQUEST_FIELDS)
    for row in rows:
        if len(row) == 5:
            out += _unrouted(row, offset)
            continue
        (end, request_id, path, status, key, team, group, attempts, hedged, error, arrival, first_output, usage,
         cost) = row
        if error is None and not hedged and len(attempts) == 1 and (served := attempts[0]).status == "ok":
            # the common case, one attempt answered
            middle = (answered(line := (path, status, key, team, group, served.deployment, served.vendor))
                      or _answered(line))
        else:
            middle = _FRAGMENT(_head(path, status, key, team, group) + _outcome(attempts, hedged, error))
        # One dict for the batch, its values replaced per line (its keys keep their order): cheaper than a new one.
        fields["time"] = (end + offset) * 1000 // 1 / 1000
        fields["request_id"] = request_id
        fields["method"] = middle
        fields["latency_ms"] = int((end - arrival) * 100_000) / 100
        fields["ttft_ms"] = None if first_output is None else int((first_output - arrival) * 100_000) / 100
        if usage is None:
            fields["input_tokens"] = fields["output_tokens"] = fields["cached_tokens"] = None
        else:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
            fields["cached_tokens"] = usage.cached_tokens
        fields["cost_usd"] = (cost * 1e8 + 0.5) // 1 / 1e8 if cost else None  # cost >= 0; null: unbilled
        out += _DUMPS(fields, option=_NEWLINE)
    return bytes(out)


def _each_line(rows: list[tuple], offset: float):
    """The lines of `rows` one by one, leaving out any that cannot be encoded."""
    for row in rows:
        try:
            yield encode([row], offset)
        except (TypeError, ValueError):
            continue


def _string(value: Any) -> str:
    """The JSON of a name."""
    return _JSON.get(value) or _keep(value, _DUMPS(value).decode())


def _keep(name: Any, text: str, cache: dict = _JSON) -> str:
    """`text`, cached as the JSON of `name` (a string, or a tuple of them for a fragment) while there is room."""
    if len(cache) < _JSON_LIMIT:
        cache[name] = text
    return text


def _head(path: str, status: int, key: str | None, team: str | None, group: str) -> str:
    """The fragment from the method to "model_group" of a line that reached a model group."""
    who = (path, status, key, team, group)
    return _JSON.get(who) or _keep(who, f'"POST","path":{_string(path)},"status":{status},"key":{_string(key)}'
                                        f',"team":{_string(team)},"model_group":{_string(group)}')


def _where(deployment: str | None, vendor: str | None) -> str:
    pair = (deployment, vendor)
    return _WHERE.get(pair) or _keep(pair, f',"deployment":{_string(deployment)},"vendor":{_string(vendor)}', _WHERE)


def _answered(line: tuple) -> Any:
    """The fragment from the method to "error" of a line answered at its one attempt."""
    return _keep(line, _FRAGMENT(_head(*line[:5]) + _where(*line[5:]) + _ONE_ANSWER), _ANSWERED)


def _outcome(attempts: list, hedged: bool, error: type | None) -> str:
    """The fragment from "deployment" to "error" of a line but one answered at its one attempt."""
    served = last = None
    for attempt in attempts:
        if attempt.status != "cancelled":  # a hedge race's loser: the request's end is the other attempt's
            last = attempt
        if attempt.status == "ok":
            served = attempt
    if error is not None:
        result = "abandoned" if issubclass(error, asyncio.CancelledError) else "error"
        error = error.__name__
    elif last is None:
        result = "error"
    else:
        result = _RESULTS.get(last.status, "error")
        error = last.error_kind if last.status == "failed" else None
    tried = "null"
    if len(attempts) > 1:
        name = _JSON.get
        tried = f'[{",".join([name(a.deployment) or _string(a.deployment) for a in attempts])}]'
    where = _NO_DEPLOYMENT if served is None else _where(served.deployment, served.vendor)
    return (f'{where},"attempts":{len(attempts)},"tried":{tried},"hedged":{"true" if hedged else "false"}'
            f',"result":"{result}","error":{_JSON.get(error) or _string(error)}')


def _unrouted(row: tuple, offset: float) -> bytes:
    when, request_id, method, path, status = row
    return _DUMPS({"time": int((when + offset) * 1000) / 1000, "request_id": request_id, "method": method,
                   "path": path, "status": status, "model_group": None, "attempts": 0}, option=_NEWLINE)
