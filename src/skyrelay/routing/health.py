"""Per-deployment health: a circuit breaker plus upstream-requested cool-downs. Pure state, no clock of its own.

Each deployment name has at most one small record; a deployment that never failed has none, so the hot path
(`is_available` on a healthy deployment) is one dict miss. A record is a few numbers and, once a request failed,
a ring of ERROR_BUCKETS time buckets (two counters each), so a shared (Redis) twin can hold the very same fields.

    closed ──failure_threshold consecutive failures, or the error rate (below)──▶ open (for the ejection time)
    open ──cool-down elapsed──▶ half_open: exactly one probe may go (a stale probe lets another go)
    open/half_open ──an active health check succeeds (health_check: {interval_s})──▶ closed
    half_open ──probe succeeds──▶ closed          half_open ──probe fails──▶ open (cool-down doubled, capped)

Error rate: from a deployment's first failure on, its answers are counted in a sliding window of `window_s`
(ERROR_BUCKETS buckets, so a bucket ages out whole). When the window holds at least `min_requests` answers and
the failed share reaches `threshold`, the breaker opens, even when failures alternate with successes and the
consecutive rule never trips. The window is dropped whenever the breaker opens or closes, and with the whole
record once no failure is left in it. Only breaker failures count (not 429s, not the client's own mistakes);
a slow answer is an answer: it is a success however long it took within the deployment's timeouts (latency-aware
strategies move traffic away from it; the breaker does not).

Repeat offences: the ejection time is `cooldown * 2**n`, capped at `max_cooldown`, where n counts the earlier
ejections in an unbroken run: an ejection that begins within `repeat_memory` seconds of the previous recovery
(breaker closed again) adds one to n; one that begins later starts over at n = 0. So 30 s, then 60 s, 120 s, ...
for a deployment that keeps relapsing, back to 30 s after `repeat_memory` seconds of good behaviour.

An upstream 429 with Retry-After cools the deployment down for exactly that long, without tripping the breaker:
once it elapses the deployment is closed again (or half-open, if the breaker had tripped before).

A 429 without Retry-After (Bedrock's ThrottlingException, Gemini's RESOURCE_EXHAUSTED) is a throttle, not an
outage: it does not count towards the breaker either, and cools the deployment down for THROTTLE_COOLDOWN (1 s),
doubled each time throttling repeats once that cool-down is over, capped at the breaker's `cooldown`.
The next success after the cool-down clears it (one arriving during it answers a request sent before, like a 429
arriving then: the cool-down already accounts for both).

A stream's verdict is how it ends, not how it starts: the dispatcher reports its success or failure at its end,
and a stream the client abandoned says nothing either way (`on_abandoned`).

Many replicas: `on_change` hears every breaker transition made here (opened, re-opened by a failed probe,
closed), for the replicas to share (dispatch_shared.py publishes it); `adopt` and `release` apply another
replica's transitions, without calling `on_change` back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

_NEVER = float("-inf")  # any clock works, even one that starts below zero
THROTTLE_COOLDOWN = 1.0  # seconds of the first cool-down for a 429 without Retry-After
ERROR_BUCKETS = 10  # time buckets in the error-rate window

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# Why a deployment is unavailable, as the planner reports it in Plan.skipped.
COOLING_DOWN = "cooling down"  # an upstream asked us to wait (Retry-After) or throttled us (429)
CIRCUIT_OPEN = "circuit open"  # too many consecutive failures, or too high an error rate
PROBE_IN_FLIGHT = "probe in flight"  # half-open: the one trial request is still running


@dataclass(frozen=True, slots=True)
class ErrorRate:
    threshold: float = 0.5  # failed share of the window's answers that opens the breaker
    window_s: float = 30.0  # length of the sliding window
    min_requests: int = 10  # fewer answers than this in the window never open the breaker

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError("error_rate threshold must be in (0, 1]")
        if not self.window_s > 0:
            raise ValueError("error_rate window_s must be > 0")
        if self.min_requests < 1:
            raise ValueError("error_rate min_requests must be >= 1")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3  # consecutive failures that open the breaker
    cooldown: float = 30.0  # seconds the breaker stays open the first time
    max_cooldown: float = 300.0  # cap for doubled cool-downs and for Retry-After
    error_rate: ErrorRate | None = ErrorRate()  # None: only consecutive failures open the breaker
    repeat_memory: float = 600.0  # seconds after a recovery within which a new ejection is a repeat offence

    def __post_init__(self):
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not self.cooldown > 0:
            raise ValueError("cooldown must be > 0")
        if not self.max_cooldown >= self.cooldown:
            raise ValueError("max_cooldown must be >= cooldown")
        if not self.repeat_memory >= 0:
            raise ValueError("repeat_memory must be >= 0")


class _Window:
    """Answers and failures per time bucket over the last ERROR_BUCKETS buckets: O(1) to record and to ask."""

    __slots__ = ("bucket_s", "slot", "answers", "failed", "total", "total_failed")

    def __init__(self, window_s: float, now: float):
        self.bucket_s = window_s / ERROR_BUCKETS
        self.slot = int(now // self.bucket_s)  # the newest bucket's number; its index is slot % ERROR_BUCKETS
        self.answers = [0] * ERROR_BUCKETS
        self.failed = [0] * ERROR_BUCKETS
        self.total = 0
        self.total_failed = 0

    def _advance(self, now: float) -> int:
        """Age out the buckets older than the window; the index of now's bucket (a clock that went back counts
        in the newest one)."""
        slot = int(now // self.bucket_s)
        if slot > self.slot:
            if slot - self.slot >= ERROR_BUCKETS:
                self.answers = [0] * ERROR_BUCKETS
                self.failed = [0] * ERROR_BUCKETS
                self.total = self.total_failed = 0
            else:
                for stale in range(self.slot + 1, slot + 1):
                    i = stale % ERROR_BUCKETS
                    self.total -= self.answers[i]
                    self.total_failed -= self.failed[i]
                    self.answers[i] = self.failed[i] = 0
            self.slot = slot
        return self.slot % ERROR_BUCKETS

    def record(self, now: float, failed: bool) -> None:
        i = self._advance(now)
        self.answers[i] += 1
        self.total += 1
        if failed:
            self.failed[i] += 1
            self.total_failed += 1

    def failures(self, now: float) -> int:
        self._advance(now)
        return self.total_failed

    def trips(self, rule: ErrorRate) -> bool:
        return self.total >= rule.min_requests and self.total_failed >= rule.threshold * self.total


class _Record:
    """One deployment's health. backoff > 0 means the breaker has tripped and not yet closed again."""

    __slots__ = ("failures", "open_until", "backoff", "probe_since", "throttle", "window", "offences",
                 "recovered_at")

    def __init__(self):
        self.failures = 0  # consecutive failures counted while the breaker was closed
        self.open_until = _NEVER  # unavailable while now < open_until
        self.backoff = 0.0  # current breaker cool-down length; 0 = breaker closed
        self.probe_since: float | None = None  # when the half-open probe was sent
        self.throttle = 0.0  # current throttle cool-down length; 0 = not throttled since the last success
        self.window: _Window | None = None  # the error-rate window, from the first failure since the breaker closed
        self.offences = 0  # earlier ejections in the current run of repeat offences
        self.recovered_at = _NEVER  # when the breaker last closed again

    def probe_blocks(self, now: float) -> bool:
        """A probe is in flight and not yet stale (in flight for less than the cool-down)."""
        return self.probe_since is not None and now - self.probe_since < self.backoff


class HealthBook:
    """In-process breaker state for every deployment, keyed by deployment name."""

    __slots__ = ("policy", "_records", "on_change")

    def __init__(self, policy: BreakerPolicy = BreakerPolicy()):
        self.policy = policy
        self._records: dict[str, _Record] = {}
        # (name, open_until, cooldown) after this book opened or closed a breaker (cooldown 0: closed); rare
        self.on_change: Callable[[str, float, float], None] | None = None

    # --- questions (the planner asks these on every request) -----------------------------------------------------

    def is_available(self, name: str, now: float) -> bool:
        return self.unavailable_reason(name, now) is None

    def seconds_until_available(self, name: str, now: float) -> float:
        rec = self._records.get(name)
        if rec is None:
            return 0.0
        if now < rec.open_until:
            return rec.open_until - now
        if rec.backoff and rec.probe_blocks(now):
            return rec.probe_since + rec.backoff - now
        return 0.0

    def state(self, name: str, now: float) -> str:
        """The breaker's own state: a cool-down (Retry-After, a throttle) leaves a closed breaker closed, and
        says so in unavailable_reason (COOLING_DOWN) instead."""
        rec = self._records.get(name)
        if rec is None or not rec.backoff:
            return CLOSED
        return OPEN if now < rec.open_until else HALF_OPEN

    def unavailable_reason(self, name: str, now: float) -> str | None:
        """Why the deployment cannot take a request now (COOLING_DOWN, CIRCUIT_OPEN, PROBE_IN_FLIGHT), or None."""
        rec = self._records.get(name)
        if rec is None:
            return None
        if now < rec.open_until:
            return CIRCUIT_OPEN if rec.backoff else COOLING_DOWN
        if rec.backoff and rec.probe_blocks(now):
            return PROBE_IN_FLIGHT
        return None

    def is_ejected(self, name: str) -> bool:
        """The breaker has tripped and not closed again (open or half-open); a cool-down alone is not ejection."""
        rec = self._records.get(name)
        return rec is not None and rec.backoff > 0

    # --- outcomes (the dispatcher reports these) ------------------------------------------------------------------

    def on_attempt(self, name: str, now: float) -> None:
        rec = self._records.get(name)
        if rec is not None and rec.backoff and now >= rec.open_until and not rec.probe_blocks(now):
            rec.probe_since = now

    def on_abandoned(self, name: str, now: float) -> None:
        """The attempt ended with no verdict on the deployment (the client's own mistake, a feature refused before
        sending, a cancelled request): free the half-open probe slot so the next request can probe."""
        rec = self._records.get(name)
        if rec is not None:
            rec.probe_since = None

    def on_success(self, name: str, now: float) -> None:
        """An answer, however slow: slowness is for latency-aware strategies to weigh, never a failure."""
        rec = self._records.get(name)
        if rec is None:
            return
        if now < rec.open_until:
            # A request sent before the deployment went open came back fine: it proves nothing about now,
            # and must not cut short a cool-down the upstream asked for.
            rec.failures = 0
            return
        if rec.backoff:  # the half-open probe answered
            self._close(rec, now)
            self._changed(name, rec)
            return
        rec.failures = 0
        rec.throttle = 0.0
        if rec.window is not None:
            rec.window.record(now, failed=False)
        self._forget_if_clean(name, rec, now)

    def on_probe_success(self, name: str, now: float) -> None:
        """An active health check answered: an ejected deployment is closed again at once (its offences are
        remembered), so the next customer request is not its probe."""
        rec = self._records.get(name)
        if rec is not None and rec.backoff:
            self._close(rec, now)
            self._changed(name, rec)

    def on_failure(
        self, name: str, now: float, *, retry_after: float | None = None, throttled: bool = False,
        cools_down: bool = True,
    ) -> None:
        """`throttled`: the upstream answered 429 (its own words for "too many requests", not "down")."""
        if not cools_down:  # the client's own mistake: says nothing about the deployment, Retry-After or not
            return
        rec = self._records.get(name)
        if rec is None:
            rec = self._records[name] = _Record()
        policy = self.policy
        if retry_after is not None:
            wait = min(retry_after, policy.max_cooldown) if retry_after > 0 else 0.0  # also rejects NaN
            rec.open_until = max(rec.open_until, now + wait)
            rec.probe_since = None
            return
        if throttled:
            self._throttle(rec, now)
            return
        if rec.backoff:
            if now >= rec.open_until:  # half-open: the probe failed
                rec.backoff = min(rec.backoff * 2, policy.max_cooldown)
                rec.open_until = now + rec.backoff
                rec.probe_since = None
                self._changed(name, rec)
            # else: a request sent before the breaker opened; the breaker already acted on its kind.
            return
        rec.failures += 1
        rule = policy.error_rate
        if rule is not None:
            if rec.window is None:
                rec.window = _Window(rule.window_s, now)
            rec.window.record(now, failed=True)
        if rec.failures >= policy.failure_threshold or (rule is not None and rec.window.trips(rule)):
            self._trip(rec, now)
            self._changed(name, rec)

    def _changed(self, name: str, rec: _Record) -> None:
        if self.on_change is not None:
            self.on_change(name, rec.open_until, rec.backoff)

    # --- another replica's verdicts (dispatch_shared.py) ----------------------------------------------------------

    def adopt(self, name: str, open_until: float, cooldown: float) -> None:
        """Another replica opened the deployment's breaker until `open_until` (this book's clock): open here too,
        unless it already is, at least as long. Half-open once it elapses, probed as if it had opened here."""
        rec = self._records.get(name)
        if rec is None:
            rec = self._records[name] = _Record()
        elif rec.backoff and rec.open_until >= open_until:
            return
        rec.backoff = max(cooldown, 1e-9)  # > 0: tripped
        rec.open_until = open_until
        rec.probe_since = None
        rec.failures = 0
        rec.window = None

    def release(self, name: str, now: float) -> None:
        """Another replica closed the deployment's breaker (its probe, or a health check, answered)."""
        rec = self._records.get(name)
        if rec is not None and rec.backoff:
            self._close(rec, now)

    def _trip(self, rec: _Record, now: float) -> None:
        policy = self.policy
        repeat = now - rec.recovered_at < policy.repeat_memory
        rec.offences = rec.offences + 1 if repeat else 0
        rec.backoff = min(policy.cooldown * 2.0 ** min(rec.offences, 64), policy.max_cooldown)
        rec.open_until = max(rec.open_until, now + rec.backoff)
        rec.window = None

    def _close(self, rec: _Record, now: float) -> None:
        rec.backoff = 0.0
        rec.open_until = _NEVER
        rec.probe_since = None
        rec.failures = 0
        rec.throttle = 0.0
        rec.window = None
        rec.recovered_at = now  # kept while the repeat memory lasts; the record goes at a later clean success

    def _forget_if_clean(self, name: str, rec: _Record, now: float) -> None:
        """Drop a record that no longer says anything: no failure in its window, no offence to remember."""
        if rec.window is not None and rec.window.failures(now):
            return
        if now - rec.recovered_at < self.policy.repeat_memory:
            return
        del self._records[name]

    def _throttle(self, rec: _Record, now: float) -> None:
        if rec.throttle and now < rec.open_until:
            return  # sent before the current cool-down began: that cool-down already answers it
        first = min(THROTTLE_COOLDOWN, self.policy.cooldown)
        rec.throttle = min(rec.throttle * 2, self.policy.cooldown) if rec.throttle else first
        rec.open_until = max(rec.open_until, now + rec.throttle)
        rec.probe_since = None  # a half-open probe that was throttled: the next one may go once this elapses

    # --- inspection -----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict]:
        """Every deployment with a record (the others are healthy), as plain JSON-ready dicts."""
        return {
            name: {
                "failures": rec.failures,
                "open_until": None if rec.open_until == _NEVER else rec.open_until,
                "cooldown": rec.backoff,
                "probe_since": rec.probe_since,
                "throttle": rec.throttle,
                "offences": rec.offences,
                "recovered_at": None if rec.recovered_at == _NEVER else rec.recovered_at,
                "window": None if rec.window is None else {
                    "requests": rec.window.total, "failures": rec.window.total_failed},
            }
            for name, rec in self._records.items()
        }
