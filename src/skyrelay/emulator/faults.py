"""Fault plans: which requests a cloud fails, and how.

A plan is an ordered list of faults; for each request the first fault that applies fires. A fault applies when
its filters match (`match`: the operation; `times`: how often it may still fire; `cut_stream` only to streams)
and all of its triggers hold (`at`: these request numbers, `every`: every Nth, `rate`: with this probability);
a fault with no trigger applies to every request. Request numbers count from 1 since the plan was installed, so a
test that sets `at: [1]` at runtime fails its very next request. `rate` draws from the plan's own seeded random
source: the same plan and the same traffic fail the same requests, run after run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

KINDS = ("status", "hang", "reset", "cut_stream", "slow", "content_filter")
# Operations a protocol may report for a request; protocols that add one add it here.
OPERATIONS = {"chat", "embeddings", "models"}
_COMMON_KEYS = {"kind", "rate", "at", "every", "times", "match", "message"}
_KIND_KEYS = {
    "status": {"status", "retry_after"},
    "hang": {"seconds"},
    "reset": set(),
    "cut_stream": {"after_chunks", "ending"},
    "slow": {"extra_ms"},
    "content_filter": {"target"},
}
# How a cut stream ends: dropped (TCP reset), or as if complete, with the chunked terminator or, for a
# close-delimited body (no content-length, not chunked), by closing the connection cleanly.
CUT_ENDINGS = ("reset", "clean", "close")
_UNSET: Any = object()


class FaultConfigError(ValueError):
    """A fault description is wrong; the message names where."""


@dataclass(slots=True)
class Fault:
    kind: str
    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    seconds: float | None = None  # hang: answer normally after this long (None: never)
    after_chunks: int = 3  # cut_stream
    ending: str = "reset"  # cut_stream: one of CUT_ENDINGS
    extra_ms: float = 500.0  # slow
    target: str = "prompt"  # content_filter: "prompt" (request refused) or "output" (reply cut)
    rate: float | None = None
    at: frozenset[int] | None = None
    every: int | None = None
    times: int | None = None
    match: frozenset[str] | None = None
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        extras = {
            "status": {"status": self.status, "retry_after": self.retry_after},
            "hang": {"seconds": self.seconds},
            "cut_stream": {"after_chunks": self.after_chunks, "ending": self.ending},
            "slow": {"extra_ms": self.extra_ms},
            "content_filter": {"target": self.target},
        }.get(self.kind, {})
        out.update(extras)
        for key in ("rate", "every", "times", "message"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.at is not None:
            out["at"] = sorted(self.at)
        if self.match is not None:
            out["match"] = sorted(self.match)
        out["fired"] = self.fired
        return out


def parse_fault(raw: Any, where: str = "fault") -> Fault:
    """One fault from its YAML/JSON form, e.g. {status: 429, every: 3, retry_after: 2}."""
    if isinstance(raw, Fault):
        return raw
    if not isinstance(raw, dict):
        raise FaultConfigError(f"{where}: expected a mapping like {{status: 500, rate: 0.2}}, got {raw!r}")
    kind = raw.get("kind", "status" if "status" in raw else None)
    if kind == "error":
        kind = "status"
    if kind not in KINDS:
        raise FaultConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)} (or give a `status`)")
    unknown = set(raw) - _COMMON_KEYS - _KIND_KEYS[kind]
    if unknown:
        raise FaultConfigError(f"{where}: unknown key(s) {sorted(unknown)} for a {kind} fault")
    fault = Fault(kind=kind)
    fault.message = _opt(raw, "message", str, where)
    fault.rate = _opt(raw, "rate", float, where, low=0.0, high=1.0)
    fault.every = _opt(raw, "every", int, where, low=1)
    fault.times = _opt(raw, "times", int, where, low=1)
    at = raw.get("at")
    if at is not None:
        at = [at] if isinstance(at, int) else at
        if not isinstance(at, list) or not all(isinstance(n, int) and n >= 1 for n in at):
            raise FaultConfigError(f"{where}.at: expected request numbers (from 1), e.g. [3, 4]")
        fault.at = frozenset(at)
    match = raw.get("match")
    if match is not None:
        match = [match] if isinstance(match, str) else match
        if not isinstance(match, list) or not all(m in OPERATIONS for m in match):
            raise FaultConfigError(f"{where}.match: expected one of {sorted(OPERATIONS)}")
        fault.match = frozenset(match)
    if kind == "status":
        fault.status = _opt(raw, "status", int, where, low=100, high=599) or 500
        retry_after = raw.get("retry_after", _UNSET)
        fault.retry_after = (1.0 if fault.status == 429 else None) if retry_after is _UNSET else _opt(
            raw, "retry_after", float, where, low=0.0)
    elif kind == "hang":
        fault.seconds = _opt(raw, "seconds", float, where, low=0.0)
    elif kind == "cut_stream":
        fault.after_chunks = _opt(raw, "after_chunks", int, where, low=0) if raw.get("after_chunks") is not None else 3
        fault.ending = raw.get("ending", "reset")
        if fault.ending not in CUT_ENDINGS:
            raise FaultConfigError(f"{where}.ending: expected one of {', '.join(CUT_ENDINGS)}, got {fault.ending!r}")
    elif kind == "slow":
        fault.extra_ms = _opt(raw, "extra_ms", float, where, low=0.0) if raw.get("extra_ms") is not None else 500.0
    elif kind == "content_filter":
        fault.target = raw.get("target", "prompt")
        if fault.target not in ("prompt", "output"):
            raise FaultConfigError(f"{where}.target: expected 'prompt' or 'output'")
    return fault


def _opt(raw: dict, key: str, kind: type, where: str, low: float | None = None, high: float | None = None):
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if not ok or isinstance(value, bool):
        raise FaultConfigError(f"{where}.{key}: expected {'a number' if kind is float else kind.__name__}, "
                               f"got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise FaultConfigError(f"{where}.{key}: must be {bounds}, got {value!r}")
    return kind(value)


def parse_faults(raw: Any, where: str = "faults") -> list[Fault]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FaultConfigError(f"{where}: expected a list of faults")
    return [parse_fault(item, f"{where}[{i}]") for i, item in enumerate(raw)]


class FaultPlan:
    """The faults of one cloud and the request counter they trigger on."""

    __slots__ = ("faults", "requests", "_rng")

    def __init__(self, faults: list[Fault], seed: int = 0):
        self.faults = faults
        self.requests = 0
        self._rng = random.Random(seed * 1_000_003 + 17)

    def next_request(self, operation: str, stream: bool) -> Fault | None:
        """Count one request and return the fault it suffers, if any."""
        self.requests += 1
        n = self.requests
        for fault in self.faults:
            if fault.times is not None and fault.fired >= fault.times:
                continue
            if fault.match is not None and operation not in fault.match:
                continue
            if fault.kind == "cut_stream" and not stream:
                continue  # a non-streamed reply has no chunks to cut
            if fault.kind == "content_filter" and operation != "chat":
                continue
            if fault.at is not None and n not in fault.at:
                continue
            if fault.every is not None and n % fault.every:
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            fault.fired += 1
            return fault
        return None
