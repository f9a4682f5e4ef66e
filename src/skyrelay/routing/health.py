"""Per-deployment health: a circuit breaker plus upstream-requested cool-downs. Pure state, no clock of its own.

Each deployment name has at most one small record; a deployment that never failed has none, so the hot path
(`is_available` on a healthy deployment) is one dict miss. A record is five numbers, so a shared (Redis) twin can
hold the very same fields.

    closed ──failure_threshold consecutive failures──▶ open (for `cooldown`)
    open ──cool-down elapsed──▶ half_open: exactly one probe may go (a stale probe lets another go)
    half_open ──probe succeeds──▶ closed          half_open ──probe fails──▶ open (cool-down doubled, capped)

An upstream 429 with Retry-After cools the deployment down for exactly that long, without tripping the breaker:
once it elapses the deployment is closed again (or half-open, if the breaker had tripped before).

A 429 without Retry-After (Bedrock's ThrottlingException, Gemini's RESOURCE_EXHAUSTED) is a throttle, not an
outage: it does not count towards the breaker either, and cools the deployment down for THROTTLE_COOLDOWN (1 s),
doubled each time throttling repeats once that cool-down is over, capped at the breaker's `cooldown`.
The next success after the cool-down clears it (one arriving during it answers a request sent before, like a 429
arriving then: the cool-down already accounts for both).

A stream's verdict is how it ends, not how it starts: the dispatcher reports its success or failure at its end,
and a stream the client abandoned says nothing either way (`on_abandoned`).
"""

from __future__ import annotations

from dataclasses import dataclass

_NEVER = float("-inf")  # any clock works, even one that starts below zero
THROTTLE_COOLDOWN = 1.0  # seconds of the first cool-down for a 429 without Retry-After

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# Why a deployment is unavailable, as the planner reports it in Plan.skipped.
COOLING_DOWN = "cooling down"  # an upstream asked us to wait (Retry-After) or throttled us (429)
CIRCUIT_OPEN = "circuit open"  # too many consecutive failures
PROBE_IN_FLIGHT = "probe in flight"  # half-open: the one trial request is still running


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3  # consecutive failures that open the breaker
    cooldown: float = 30.0  # seconds the breaker stays open the first time
    max_cooldown: float = 300.0  # cap for doubled cool-downs and for Retry-After

    def __post_init__(self):
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not self.cooldown > 0:
            raise ValueError("cooldown must be > 0")
        if not self.max_cooldown >= self.cooldown:
            raise ValueError("max_cooldown must be >= cooldown")


class _Record:
    """One deployment's health. backoff > 0 means the breaker has tripped and not yet closed again."""

    __slots__ = ("failures", "open_until", "backoff", "probe_since", "throttle")

    def __init__(self):
        self.failures = 0  # consecutive failures counted while the breaker was closed
        self.open_until = _NEVER  # unavailable while now < open_until
        self.backoff = 0.0  # current breaker cool-down length; 0 = breaker closed
        self.probe_since: float | None = None  # when the half-open probe was sent
        self.throttle = 0.0  # current throttle cool-down length; 0 = not throttled since the last success

    def probe_blocks(self, now: float) -> bool:
        """A probe is in flight and not yet stale (in flight for less than the cool-down)."""
        return self.probe_since is not None and now - self.probe_since < self.backoff


class HealthBook:
    """In-process breaker state for every deployment, keyed by deployment name."""

    __slots__ = ("policy", "_records")

    def __init__(self, policy: BreakerPolicy = BreakerPolicy()):
        self.policy = policy
        self._records: dict[str, _Record] = {}

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
        rec = self._records.get(name)
        if rec is None:
            return CLOSED
        if now < rec.open_until:
            return OPEN
        return HALF_OPEN if rec.backoff else CLOSED

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
        rec = self._records.get(name)
        if rec is None:
            return
        if now < rec.open_until:
            # A request sent before the deployment went open came back fine: it proves nothing about now,
            # and must not cut short a cool-down the upstream asked for.
            rec.failures = 0
            return
        del self._records[name]

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
            # else: a request sent before the breaker opened; the breaker already acted on its kind.
            return
        rec.failures += 1
        if rec.failures >= policy.failure_threshold:
            rec.backoff = policy.cooldown
            rec.open_until = max(rec.open_until, now + policy.cooldown)

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
            }
            for name, rec in self._records.items()
        }
