"""HealthBook: each case is a script of outcomes at given times, then what the book must say at given times."""

import json
import math

import pytest

from skyrelay.routing.health import BreakerPolicy, HealthBook

POLICY = BreakerPolicy(failure_threshold=3, cooldown=10.0, max_cooldown=35.0, repeat_memory=100.0)
D = "dep-a"


def fail(t, **kw):
    return ("on_failure", t, kw)


def ok(t):
    return ("on_success", t, {})


def attempt(t):
    return ("on_attempt", t, {})


def run(events, policy=POLICY):
    book = HealthBook(policy)
    for method, t, kw in events:
        getattr(book, method)(D, t, **kw)
    return book


# (id, events, [(now, state, available, seconds_until_available, reason)] [, policy]); `state` is the breaker's own:
# a cool-down (Retry-After, a throttle) leaves a closed breaker "closed", with the reason "cooling down"
CASES = [
    ("unknown deployment is healthy", [], [(0.0, "closed", True, 0.0, None)]),
    (
        "below threshold stays closed",
        [fail(1), fail(2)],
        [(2.0, "closed", True, 0.0, None)],
    ),
    (
        "a success resets the consecutive count",
        [fail(1), fail(2), ok(3), fail(4), fail(5)],
        [(5.0, "closed", True, 0.0, None)],
    ),
    (
        "threshold opens for cooldown",
        [fail(1), fail(2), fail(3)],
        [(3.0, "open", False, 10.0, "circuit open"), (12.5, "open", False, 0.5, "circuit open")],
    ),
    (
        "after cooldown: half-open, available for a probe",
        [fail(1), fail(2), fail(3)],
        [(13.0, "half_open", True, 0.0, None)],
    ),
    (
        "half-open admits a single probe",
        [fail(1), fail(2), fail(3), attempt(13)],
        [(14.0, "half_open", False, 9.0, "probe in flight")],
    ),
    (
        "a second attempt does not restart the probe clock",
        [fail(1), fail(2), fail(3), attempt(13), attempt(15)],
        [(15.0, "half_open", False, 8.0, "probe in flight")],
    ),
    (
        "a probe in flight longer than the cooldown lets another go",
        [fail(1), fail(2), fail(3), attempt(13)],
        [(22.9, "half_open", False, pytest.approx(0.1), "probe in flight"), (23.0, "half_open", True, 0.0, None)],
    ),
    (
        "a failed probe re-opens with the cooldown doubled",
        [fail(1), fail(2), fail(3), attempt(13), fail(14)],
        [(14.0, "open", False, 20.0, "circuit open"), (34.0, "half_open", True, 0.0, None)],
    ),
    (
        "doubling is capped at max_cooldown",
        [fail(1), fail(2), fail(3), attempt(13), fail(13), attempt(33), fail(33), attempt(68), fail(68)],
        [(68.0, "open", False, 35.0, "circuit open")],
    ),
    (
        "a successful probe closes and forgets the past",
        [fail(1), fail(2), fail(3), attempt(13), fail(13), attempt(33), ok(34), fail(35), fail(36)],
        [(36.0, "closed", True, 0.0, None)],
    ),
    (
        "ejected again soon after closing: a repeat offence, the base cooldown doubled",
        [fail(1), fail(2), fail(3), attempt(13), fail(13), attempt(33), ok(34), fail(35), fail(36), fail(37)],
        [(37.0, "open", False, 20.0, "circuit open")],
    ),
    (
        "ejected again after the repeat memory: the base cooldown again",
        [fail(1), fail(2), fail(3), attempt(13), fail(13), attempt(33), ok(34), fail(135), fail(136), fail(137)],
        [(137.0, "open", False, 10.0, "circuit open")],
    ),
    (
        "a late failure while open neither extends nor doubles",
        [fail(1), fail(2), fail(3), fail(5)],
        [(5.0, "open", False, 8.0, "circuit open"), (13.0, "half_open", True, 0.0, None)],
    ),
    (
        "a late success while open does not cut the cooldown short",
        [fail(1), fail(2), fail(3), ok(4)],
        [(4.0, "open", False, 9.0, "circuit open")],
    ),
    (
        "Retry-After cools down for exactly that long, at once",
        [fail(1, retry_after=7.0)],
        [(1.0, "closed", False, 7.0, "cooling down"), (8.0, "closed", True, 0.0, None)],
    ),
    (
        "Retry-After is capped at max_cooldown",
        [fail(1, retry_after=1000.0)],
        [(1.0, "closed", False, 35.0, "cooling down")],
    ),
    (
        "a shorter Retry-After does not shorten a longer cool-down",
        [fail(1, retry_after=20.0), fail(2, retry_after=1.0)],
        [(2.0, "closed", False, 19.0, "cooling down")],
    ),
    (
        "Retry-After of zero, negative or NaN means no wait",
        [fail(1, retry_after=0.0), fail(1, retry_after=-5.0), fail(1, retry_after=math.nan)],
        [(1.0, "closed", True, 0.0, None)],
    ),
    (
        "Retry-After does not count towards the threshold",
        [fail(1, retry_after=1.0), fail(2, retry_after=1.0), fail(3, retry_after=1.0)],
        [(4.0, "closed", True, 0.0, None)],
    ),
    (
        "Retry-After on a half-open probe: wait, then half-open again",
        [fail(1), fail(2), fail(3), attempt(13), fail(14, retry_after=5.0)],
        [(14.0, "open", False, 5.0, "circuit open"), (19.0, "half_open", True, 0.0, None)],
    ),
    (
        "a 429 without Retry-After cools down for 1 s, not the breaker's cooldown",
        [fail(1, throttled=True)],
        [(1.0, "closed", False, 1.0, "cooling down"), (2.0, "closed", True, 0.0, None)],
    ),
    (
        "repeated throttling doubles the cool-down",
        [fail(1, throttled=True), fail(2, throttled=True), fail(4, throttled=True)],
        [(4.0, "closed", False, 4.0, "cooling down"), (8.0, "closed", True, 0.0, None)],
    ),
    (
        "throttle cool-downs are capped at the breaker's cooldown",
        [fail(t, throttled=True) for t in (0, 1, 3, 7, 15, 25, 35)],  # 1, 2, 4, 8, then 10, 10, 10
        [(35.0, "closed", False, 10.0, "cooling down"), (45.0, "closed", True, 0.0, None)],
    ),
    (
        "throttles answering requests sent during the cool-down neither extend nor double it",
        [fail(1, throttled=True), fail(1.5, throttled=True), fail(1.9, throttled=True), fail(2, throttled=True)],
        [(2.0, "closed", False, 2.0, "cooling down")],
    ),
    (
        "throttling does not count towards the threshold",
        [fail(1, throttled=True), fail(2, throttled=True), fail(4, throttled=True), fail(8, throttled=True)],
        [(16.0, "closed", True, 0.0, None)],
    ),
    (
        "throttling neither counts nor resets the breaker's count",
        [fail(1), fail(2), fail(3, throttled=True), fail(5)],
        [(5.0, "open", False, 10.0, "circuit open")],
    ),
    (
        "a success clears the throttle: the next one starts again from 1 s",
        [fail(1, throttled=True), fail(2, throttled=True), ok(5), fail(6, throttled=True)],
        [(6.0, "closed", False, 1.0, "cooling down")],
    ),
    (
        "a late success during a throttle keeps the cool-down and the doubling",
        [fail(1, throttled=True), ok(1.5), fail(2, throttled=True)],
        [(1.5 + 0.5, "closed", False, 2.0, "cooling down")],
    ),
    (
        "Retry-After wins over the throttle rule",
        [fail(1, throttled=True, retry_after=7.0)],
        [(1.0, "closed", False, 7.0, "cooling down"), (8.0, "closed", True, 0.0, None)],
    ),
    (
        "a throttled half-open probe: a short wait, then half-open again for the next probe",
        [fail(1), fail(2), fail(3), attempt(13), fail(14, throttled=True)],
        [(14.0, "open", False, 1.0, "circuit open"), (15.0, "half_open", True, 0.0, None)],
    ),
    (
        "the first throttle never waits longer than a short breaker cooldown",
        [fail(1, throttled=True)],
        [(1.0, "closed", False, 0.5, "cooling down")],
        BreakerPolicy(cooldown=0.5, max_cooldown=1.0),
    ),
    (
        "cools_down=False has no effect on health",
        [fail(1, cools_down=False)] * 5 + [fail(2, cools_down=False, retry_after=9.0)],
        [(1.0, "closed", True, 0.0, None)],
    ),
    (
        "cools_down=False does not count, nor reset the count",
        [fail(1), fail(2), fail(3, cools_down=False), fail(4)],
        [(4.0, "open", False, 10.0, "circuit open")],
    ),
    (
        "threshold of one opens on the first failure",
        [fail(1)],
        [(1.0, "open", False, 10.0, "circuit open")],
        BreakerPolicy(failure_threshold=1, cooldown=10.0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_health_book(case):
    _, events, checks, *policy = case  # an optional fourth item overrides POLICY
    book = run(events, *policy)
    for now, state, available, seconds, reason in checks:
        assert book.state(D, now) == state, now
        assert book.is_available(D, now) is available, now
        assert book.seconds_until_available(D, now) == seconds, now
        assert book.unavailable_reason(D, now) == reason, now


def test_deployments_are_independent():
    book = run([fail(1), fail(2), fail(3)])
    assert not book.is_available(D, 3.0)
    assert book.is_available("dep-b", 3.0)
    assert book.state("dep-b", 3.0) == "closed"


def test_snapshot_is_small_and_json_ready():
    book = run([fail(1), fail(2), fail(3), attempt(13)])
    book.on_failure("dep-b", 5.0, retry_after=2.0)
    book.on_failure("dep-c", 5.0)
    book.on_success("dep-c", 6.0)  # the failure is still in the error-rate window
    book.on_success("dep-c", 36.0)  # healthy again, and the failure has left the window: no record kept
    book.on_failure("dep-d", -4.0)  # any clock works, even one below zero
    snap = book.snapshot()
    assert snap == {
        D: {"failures": 3, "open_until": 13.0, "cooldown": 10.0, "probe_since": 13.0, "throttle": 0.0,
            "offences": 0, "recovered_at": None, "window": None},
        "dep-b": {"failures": 0, "open_until": 7.0, "cooldown": 0.0, "probe_since": None, "throttle": 0.0,
                  "offences": 0, "recovered_at": None, "window": None},
        "dep-d": {"failures": 1, "open_until": None, "cooldown": 0.0, "probe_since": None, "throttle": 0.0,
                  "offences": 0, "recovered_at": None, "window": {"requests": 1, "failures": 1}},
    }
    assert book.is_available("dep-d", -4.0)
    json.dumps(snap)


@pytest.mark.parametrize(
    "kw",
    [{"failure_threshold": 0}, {"cooldown": 0.0}, {"cooldown": 10.0, "max_cooldown": 5.0}],
    ids=["threshold", "cooldown", "max_cooldown"],
)
def test_policy_rejects_nonsense(kw):
    with pytest.raises(ValueError):
        BreakerPolicy(**kw)


def test_abandoned_probe_frees_the_half_open_slot():
    """A probe whose request ended without a verdict (client 4xx, local refusal, cancel) must not block the
    deployment for a whole cool-down."""
    book = HealthBook(BreakerPolicy(failure_threshold=1, cooldown=10))
    book.on_failure("d", 0.0)
    assert book.state("d", 11.0) == "half_open"
    book.on_attempt("d", 11.0)
    assert not book.is_available("d", 11.5)  # the probe is out
    book.on_abandoned("d", 11.5)
    assert book.is_available("d", 11.6)
    assert book.state("d", 11.6) == "half_open"  # still unproven: the next request is the probe
