"""Per-deployment quotas: requests and tokens per sliding minute, corrected by what the upstream says is left.

Pure state, no clock of its own (callers pass `now`). A deployment with `rpm` or `tpm` keeps a log of its
attempts in the last WINDOW seconds and running totals; the attempts sent within SLICE_S of each other share one
entry `[last_sent, tokens, requests, first_sent]`, so a log holds at most WINDOW / SLICE_S entries whatever the
rate (one per attempt held 60 s of traffic: ~100 MB at 10k requests/s). An entry leaves the window with its latest
attempt, never before any of them (a quota is never passed by the slicing; it may wait up to a slice longer).
Expired entries leave the log as it is read. An attempt reserves its estimate when it is sent and is settled at
its end: the estimate replaced by the usage the cloud reported, or refunded when nothing was sent.

The upstream's rate-limit headers (`x-ratelimit-remaining-*` / `-reset-*` of OpenAI and Azure,
`anthropic-ratelimit-*-remaining` / `-reset`) correct the count for quotas skyrelay was not told about or shares
with other clients: "0 left until T" makes the deployment refuse until T; each attempt sent meanwhile spends one
of what was left. A deployment without limits and without such signals costs one dict miss per question.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import deque

WINDOW = 60.0  # seconds: rpm and tpm are per minute
BYTES_PER_TOKEN = 4.0  # the starting guess of request-body bytes per input token, corrected by reported usage
DEFAULT_OUTPUT_TOKENS = 256  # the output a request without max_tokens is assumed to produce
UPSTREAM_RESET = 1.0  # seconds "0 remaining" holds when the upstream sends no reset time (Azure)
SLICE_S = 0.1  # seconds of attempts that share one entry of a deployment's log
GONE = -1.0  # the time of an entry that left its window (no caller's clock gives a negative time)

QUOTA = "quota"  # rpm or tpm would be exceeded (or the upstream says none is left)
CONCURRENCY = "concurrency"  # max_concurrency requests already in flight

_NO_SIGNAL = (None, None)


class _Log:
    """Attempts in a sliding window, sliced (see the module's docstring); also the vendor shares' (policies.py)."""

    __slots__ = ("entries", "requests", "tokens", "bytes_per_token", "slice_s")

    def __init__(self, slice_s: float = SLICE_S):
        self.entries: deque[list] = deque()
        self.requests = 0
        self.tokens = 0
        self.bytes_per_token = BYTES_PER_TOKEN
        self.slice_s = slice_s

    def expire(self, now: float, window: float = WINDOW) -> None:
        entries = self.entries
        horizon = now - window
        while entries and entries[0][0] <= horizon:
            entry = entries.popleft()
            self.tokens -= entry[1]
            self.requests -= entry[2]
            entry[0] = GONE  # a settle then knows its amounts left the totals

    def add(self, now: float, amount) -> tuple[list, float]:
        """Count one attempt of `amount`: its hold, (its entry, its amount), for `adjust` and `take_back`."""
        entries = self.entries
        entry = entries[-1] if entries else None
        if entry is None or now - entry[3] >= self.slice_s:
            entry = [now, 0, 0, now]
            entries.append(entry)
        else:
            entry[0] = now
        entry[1] += amount
        entry[2] += 1
        self.requests += 1
        self.tokens += amount
        return entry, amount

    def adjust(self, held: tuple[list, float], amount) -> None:
        """The attempt's amount is `amount`, not the one it was added with (nothing if its entry left)."""
        entry, added = held
        if entry[0] != GONE:
            entry[1] += amount - added
            self.tokens += amount - added

    def take_back(self, held: tuple[list, float]) -> None:
        """The attempt carried nothing after all (refused before it was sent)."""
        entry, added = held
        if entry[0] != GONE:
            entry[1] -= added
            entry[2] -= 1
            self.tokens -= added
            self.requests -= 1


class _Signal:
    """What the upstream last said is left: (remaining, until) for requests and for tokens."""

    __slots__ = ("requests", "tokens")

    def __init__(self):
        self.requests: tuple = _NO_SIGNAL
        self.tokens: tuple = _NO_SIGNAL


# The headers without which QuotaBook.observe reads nothing from an answer.
SIGNAL_HEADERS = frozenset({"x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"})


class QuotaBook:
    __slots__ = ("_logs", "_signals")

    def __init__(self):
        self._logs: dict[str, _Log] = {}
        self._signals: dict[str, _Signal] = {}

    # --- questions ------------------------------------------------------------------------------------------------

    def estimate(self, deployment, body_bytes: int, max_output: int | None) -> int:
        """Tokens this request may use on this deployment: its input guessed from the body's size, plus its
        output cap (or DEFAULT_OUTPUT_TOKENS)."""
        return self.input_tokens(deployment, body_bytes) + (
            max_output if max_output is not None else DEFAULT_OUTPUT_TOKENS)

    def input_tokens(self, deployment, body_bytes: int) -> int:
        """The request's input guessed from the body's size, at this deployment's learnt bytes per token."""
        log = self._logs.get(deployment.name)
        return int(body_bytes / (log.bytes_per_token if log is not None else BYTES_PER_TOKEN))

    def refusal(self, deployment, now: float, tokens: int) -> str | None:
        """QUOTA if one more attempt of `tokens` would pass the deployment's rpm or tpm (or the upstream's own
        count), else None. A request larger than the whole tpm is let through an empty window, or it never could."""
        name = deployment.name
        signal = self._signals.get(name)
        if signal is not None and _spent(signal, now):
            return QUOTA
        if deployment.rpm is None and deployment.tpm is None:
            return None
        return self._over_limits(deployment, now, tokens)

    def _over_limits(self, deployment, now: float, tokens: int) -> str | None:
        """QUOTA when one more attempt of `tokens` would pass the deployment's rpm or tpm (one with either)."""
        log = self._logs.get(deployment.name)
        if log is None:
            return None
        log.expire(now)
        if deployment.rpm is not None and log.requests >= deployment.rpm:
            return QUOTA
        if deployment.tpm is not None and log.tokens and log.tokens + tokens > deployment.tpm:
            return QUOTA
        return None

    def seconds_until_headroom(self, deployment, now: float, tokens: int) -> float:
        """When `refusal` would next say None, as far as time alone decides (a Retry-After hint)."""
        waits = [0.0]
        signal = self._signals.get(deployment.name)
        if signal is not None:
            waits += [until - now for remaining, until in (signal.requests, signal.tokens)
                      if remaining is not None and remaining <= 0 and now < until]
        self._add_waits(deployment, now, tokens, waits)
        return max(waits)

    def _add_waits(self, deployment, now: float, tokens: int, waits: list) -> None:
        """The seconds until the deployment's own counts leave room for `tokens` more, added to `waits`."""
        log = self._logs.get(deployment.name)
        if log is not None:
            log.expire(now)
            entries = log.entries
            if deployment.rpm is not None and log.requests >= deployment.rpm:
                waits.append(_when_freed(entries, now, 2, log.requests - deployment.rpm + 1))
            if deployment.tpm is not None and log.tokens and log.tokens + tokens > deployment.tpm:
                waits.append(_when_freed(entries, now, 1, log.tokens + tokens - deployment.tpm))

    # --- attempts -------------------------------------------------------------------------------------------------

    def reserve(self, deployment, now: float, tokens: int) -> tuple | None:
        """Count an attempt about to be sent; the returned hold is what `settle` takes back (None: untracked)."""
        name = deployment.name
        signal = self._signals.get(name)
        if signal is not None:
            _spend(signal, tokens)
        if deployment.rpm is None and deployment.tpm is None:
            return None
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = _Log()
        else:
            log.expire(now)
        return log.add(now, tokens)

    def settle(self, deployment, held: tuple | None, *, sent: bool, used_tokens: int | None = None,
               input_tokens: int = 0, body_bytes: int = 0) -> None:
        """The attempt ended (once). `sent` False: refused before it left (refund it all). `used_tokens`: what
        the cloud reported; None keeps the estimate (a failure or no usage report). Reported input tokens correct
        the deployment's bytes-per-token ratio for the next estimates."""
        if held is None:
            return
        log = self._logs.get(deployment.name)
        if log is None:
            return
        if not sent:
            log.take_back(held)
        elif used_tokens is not None:
            log.adjust(held, used_tokens)
        if input_tokens > 0 and body_bytes > 0:  # smoothed: one odd request does not swing the estimate
            ratio = min(max(body_bytes / input_tokens, 1.0), 16.0)
            log.bytes_per_token += (ratio - log.bytes_per_token) * 0.2

    def observe(self, name: str, now: float, headers, wall: float | None = None) -> None:
        """Read an upstream answer's rate-limit headers (lower-case names), if it sent any (SIGNAL_HEADERS says
        which answers have some: callers may skip the others)."""
        get = headers.get
        requests = get("x-ratelimit-remaining-requests")
        if requests is not None:
            tokens = get("x-ratelimit-remaining-tokens")
            self._record(name, now, requests, _duration(get("x-ratelimit-reset-requests")),
                         tokens, _duration(get("x-ratelimit-reset-tokens")))
            return
        requests = get("anthropic-ratelimit-requests-remaining")
        if requests is not None:
            wall = time.time() if wall is None else wall
            self._record(name, now, requests, _until(get("anthropic-ratelimit-requests-reset"), wall),
                         get("anthropic-ratelimit-tokens-remaining"),
                         _until(get("anthropic-ratelimit-tokens-reset"), wall))

    def _record(self, name: str, now: float, requests, requests_reset, tokens, tokens_reset) -> None:
        signal = self._signals.get(name)
        if signal is None:
            signal = self._signals[name] = _Signal()
        signal.requests = _reading(requests, requests_reset, now)
        signal.tokens = _reading(tokens, tokens_reset, now)

    def snapshot(self, now: float) -> dict[str, dict]:
        out = {}
        for name, log in self._logs.items():
            log.expire(now)
            out[name] = {"requests": log.requests, "tokens": log.tokens,
                         "bytes_per_token": round(log.bytes_per_token, 2)}
        return out


def _spent(signal: _Signal, now: float) -> bool:
    for remaining, until in (signal.requests, signal.tokens):
        if remaining is not None and remaining <= 0 and now < until:
            return True
    return False


def _spend(signal: _Signal, tokens: int) -> None:
    remaining, until = signal.requests
    if remaining is not None:
        signal.requests = (remaining - 1, until)
    remaining, until = signal.tokens
    if remaining is not None:
        signal.tokens = (remaining - tokens, until)


def _when_freed(entries: deque, now: float, field: int, needed: int) -> float:
    """Seconds until the oldest entries that free `needed` requests (field 2) or tokens (field 1) expire."""
    freed = 0
    for entry in entries:
        freed += entry[field]
        if freed >= needed:
            return max(0.0, entry[0] + WINDOW - now)
    return WINDOW


def _reading(remaining, reset: float | None, now: float) -> tuple:
    try:
        count = int(remaining)
    except (TypeError, ValueError):
        return _NO_SIGNAL
    return count, now + (reset if reset is not None else UPSTREAM_RESET)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value: str | None) -> float | None:
    """OpenAI's Go-style duration ("120ms", "1s", "6m0s") in seconds; None if absent or unreadable."""
    if not value:
        return None
    parts = _DURATION_PART.findall(value)
    if not parts:
        return None
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def _until(value: str | None, wall: float) -> float | None:
    """Seconds from `wall` until an RFC 3339 UTC time ("2026-01-01T00:00:30Z"), as Anthropic sends resets."""
    if not value:
        return None
    try:
        when = calendar.timegm(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return max(0.0, when - wall)
