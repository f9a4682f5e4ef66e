"""One request's record, from arrival to its end: who it is, what it asked for, every attempt, and its usage.

Born where the request enters the dispatcher and closed exactly once however the request ends (answered, failed,
stream finished, broken or abandoned), so what is hung on `close` (quota settlement today; the ledger and
telemetry later) runs once per request. Slots classes, one small object per attempt: no dicts on the hot path.
"""

from __future__ import annotations

import os
from typing import Any, Callable

_ID_PREFIX = "req_" + os.urandom(5).hex()
_counter = 0


def new_request_id() -> str:
    """A per-process prefix and a counter: unique, and nearly free (the id the client sees as x-request-id)."""
    global _counter
    _counter += 1
    return f"{_ID_PREFIX}{_counter:x}"


class Attempt:
    """One try at one deployment. `status` is None while in flight, then "ok", "failed" or "abandoned"."""

    __slots__ = ("deployment", "vendor", "region", "start", "end", "status", "error_kind", "usage",
                 "reserved_tokens")

    def __init__(self, deployment: Any, start: float, reserved_tokens: int):
        self.deployment = deployment.name
        self.vendor = deployment.kind
        self.region = deployment.region
        self.start = start
        self.end: float | None = None
        self.status: str | None = None
        self.error_kind: str | None = None  # the error's class name when it failed
        self.usage: Any = None  # canonical Usage the cloud reported, when it did
        self.reserved_tokens = reserved_tokens  # the quota estimate held for this attempt until it ends

    def finish(self, end: float, status: str, error: BaseException | None = None) -> None:
        self.end = end
        self.status = status
        if error is not None:
            self.error_kind = type(error).__name__


class RequestContext:
    """`body_bytes` and `max_output` feed the token estimate quotas reserve before the call."""

    __slots__ = ("request_id", "arrival", "group", "body_bytes", "max_output", "estimated_tokens", "attempts",
                 "usage", "closed", "on_close", "debug_route", "path", "first_output", "error")

    def __init__(self, request_id: str | None = None, arrival: float = 0.0, *, body_bytes: int = 0,
                 debug_route: bool = False, path: str = ""):
        self.request_id = request_id or new_request_id()
        self.arrival = arrival
        self.group: str | None = None
        self.body_bytes = body_bytes
        self.max_output: int | None = None
        self.estimated_tokens = 0  # of the attempt that served (or the last one tried)
        self.attempts: list[Attempt] = []
        self.usage: Any = None  # the final usage, of the attempt that served
        self.closed = False
        self.on_close: Callable[["RequestContext"], None] | None = None
        self.debug_route = debug_route  # the client asked for x-skyrelay-route
        self.path = path  # the route it came in on (/v1/chat/completions, /v1/messages, ...)
        self.first_output: float | None = None  # a stream's: when its first real output was in hand (TTFT)
        self.error: BaseException | None = None  # what ended it, when it failed before an answer

    def close(self) -> bool:
        """End the request's record; True the first time, False (and nothing done) after that."""
        if self.closed:
            return False
        self.closed = True
        if self.on_close is not None:
            self.on_close(self)
        return True
