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
    """One try at one deployment. `status` is None while in flight, then "ok", "failed", "abandoned" (the request
    ended first), "refused" (never sent) or "cancelled" (lost a hedge race: the other attempt answered first).
    `hedged`: this attempt is the hedge, sent while an earlier one was still waiting for output."""

    __slots__ = ("deployment", "vendor", "region", "start", "end", "status", "error_kind", "usage",
                 "reserved_tokens", "first_token", "hedged", "ledger", "held")

    def __init__(self, deployment: Any, start: float, reserved_tokens: int, hedged: bool = False):
        self.deployment = deployment.name
        self.vendor = deployment.vendor
        self.region = deployment.region
        self.start = start
        self.end: float | None = None
        self.status: str | None = None
        self.error_kind: str | None = None  # the error's class name when it failed
        self.usage: Any = None  # canonical Usage the cloud reported, when it did
        self.reserved_tokens = reserved_tokens  # the quota estimate held for this attempt until it ends
        self.first_token: float | None = None  # when a stream's first output arrived (its head was read)
        self.hedged = hedged
        self.ledger: tuple | None = None  # its tokens and costs, once the ledger has written its record
        self.held: Any = None  # its deployment's shared quota reservation (state.backend: redis), if any

    def finish(self, end: float, status: str, error: BaseException | None = None) -> None:
        self.end = end
        self.status = status
        if error is not None:
            self.error_kind = type(error).__name__


class RequestContext:
    """`body_bytes` and `max_output` feed the token estimate quotas reserve before the call; `prompt` (the chat
    request, None for embeddings) is what prefix affinity hashes, once, into `prefix_key`; `residency` is the
    x-skyrelay-residency header's narrowing.

    Who is calling, when the request came with a declared key (all None for the master key and in development
    mode): `principal` (skyrelay.governance.Principal), `key_name`, `team`, `allowed_models` (a frozenset of model
    groups, None: all) and `key_residency` (a frozenset of the geos or regions the key's data may go to, None:
    anywhere; the planner fences deployments with it as with the header's). `admission` is the key's hold on its
    limits and budgets, settled when the context closes."""

    __slots__ = ("request_id", "arrival", "group", "body_bytes", "max_output", "estimated_tokens", "attempts",
                 "usage", "closed", "on_close", "debug_route", "prompt", "prefix_key", "residency", "principal",
                 "key_name", "team", "allowed_models", "key_residency", "admission", "path", "first_output", "error",
                 "hedged", "streamed", "cost_usd", "served")

    def __init__(self, request_id: str | None = None, arrival: float = 0.0, *, body_bytes: int = 0,
                 debug_route: bool = False, residency: frozenset[str] | None = None, principal: Any = None,
                 path: str = ""):
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
        self.prompt: Any = None
        self.prefix_key: int | None = None  # routing/affinity.py computes it on first use
        self.residency = residency  # x-skyrelay-residency: geos or regions this request narrows itself to
        self.principal = principal
        self.admission: Any = None
        if principal is None:
            self.key_name = self.team = self.allowed_models = self.key_residency = None
        else:
            self.key_name = principal.name
            self.team = principal.team
            self.allowed_models = principal.models
            self.key_residency = principal.residency
        self.path = path  # the route it came in on (/v1/chat/completions, /v1/messages, ...)
        self.first_output: float | None = None  # a stream's: when its first real output was in hand (TTFT)
        self.error: BaseException | None = None  # what ended it, when it failed before an answer
        self.hedged = False  # a hedge attempt was sent (whichever attempt won)
        self.served: Attempt | None = None  # the attempt whose answer the client got (a hedge's loser may follow)
        self.streamed = False
        self.cost_usd: float | None = None  # the billed cost, once the ledger has recorded the request

    def close(self) -> bool:
        """End the request's record; True the first time, False (and nothing done) after that."""
        if self.closed:
            return False
        self.closed = True
        if self.admission is not None:
            self.admission.settle(self)
        if self.on_close is not None:
            self.on_close(self)
        return True
