"""HealthBook's error-rate ejection and growing ejection times for repeat offences, on a scripted clock."""

import pytest

from skyrelay.routing.health import BreakerPolicy, ErrorRate, HealthBook

RATE = ErrorRate(threshold=0.5, window_s=30.0, min_requests=10)
POLICY = BreakerPolicy(failure_threshold=3, cooldown=10.0, max_cooldown=80.0, error_rate=RATE, repeat_memory=100.0)
D = "dep-a"


def alternate(book: HealthBook, start: float, count: int, step: float = 1.0) -> float:
    """Every other answer fails (failure first): the consecutive rule never trips. Returns the next time."""
    t = start
    for i in range(count):
        if i % 2 == 0:
            book.on_failure(D, t)
        else:
            book.on_success(D, t)
        t += step
    return t


def test_every_other_request_failing_opens_the_breaker_once_the_window_holds_enough():
    book = HealthBook(POLICY)
    alternate(book, 0.0, 9)  # 5 of 9 failed, but fewer than min_requests answers
    assert book.state(D, 9.0) == "closed"
    book.on_success(D, 9.0)  # 5 of 10: the threshold is reached
    assert book.state(D, 9.0) == "closed"  # a success never opens it: the rate is judged on failures
    book.on_failure(D, 10.0)  # 6 of 11
    assert book.state(D, 10.0) == "open"
    assert book.unavailable_reason(D, 10.0) == "circuit open"
    assert book.seconds_until_available(D, 10.0) == 10.0


def test_the_consecutive_rule_alone_never_trips_on_alternating_failures():
    book = HealthBook(BreakerPolicy(failure_threshold=3, cooldown=10.0, error_rate=None))
    alternate(book, 0.0, 200)
    assert book.state(D, 200.0) == "closed"


def test_a_failure_rate_below_the_threshold_stays_closed():
    book = HealthBook(POLICY)
    t = 0.0
    for i in range(60):  # one in three fails
        if i % 3 == 0:
            book.on_failure(D, t)
        else:
            book.on_success(D, t)
        t += 0.5
    assert book.state(D, t) == "closed"


def test_failures_age_out_of_the_window():
    book = HealthBook(POLICY)
    for t in range(4):  # 4 failures, each followed by a success: not yet min_requests answers
        book.on_failure(D, t * 2.0)
        book.on_success(D, t * 2.0 + 1)
    # 40 s later the window is empty again: 5 more alternating answers are not enough to judge
    alternate(book, 48.0, 5)
    assert book.state(D, 53.0) == "closed"
    assert book.snapshot()[D]["window"] == {"requests": 5, "failures": 3}


def test_the_record_is_dropped_once_no_failure_is_left_in_the_window():
    book = HealthBook(POLICY)
    book.on_failure(D, 0.0)
    book.on_success(D, 1.0)
    assert D in book.snapshot()  # the failure still counts towards the rate
    book.on_success(D, 31.0)
    assert book.snapshot() == {}


def test_429s_and_client_mistakes_do_not_count_towards_the_rate():
    book = HealthBook(POLICY)
    t = 0.0
    for _ in range(20):
        book.on_failure(D, t, throttled=True)
        t += 2.0  # past each throttle cool-down
        book.on_failure(D, t, cools_down=False)
        book.on_success(D, t)
        t += 0.1
    assert book.state(D, t) == "closed"


def test_a_slow_answer_is_a_success():
    """Slow but answering is not down: the dispatcher reports any answer within the timeouts as on_success,
    and a success closes a half-open breaker and resets the count, whenever it comes."""
    book = HealthBook(POLICY)
    book.on_failure(D, 0.0)
    book.on_failure(D, 1.0)
    book.on_attempt(D, 2.0)
    book.on_success(D, 62.0)  # the answer took a minute
    book.on_failure(D, 63.0)
    book.on_failure(D, 64.0)
    assert book.state(D, 64.0) == "closed"


def trip(book: HealthBook, t: float) -> None:
    for i in range(3):
        book.on_failure(D, t + i * 0.1)


def recover(book: HealthBook, t: float) -> None:
    """The half-open probe at `t` answers."""
    assert book.state(D, t) == "half_open"
    book.on_attempt(D, t)
    book.on_success(D, t)
    assert book.state(D, t) == "closed"


def test_repeat_offences_double_the_ejection_time_up_to_the_cap():
    book = HealthBook(POLICY)
    t = 0.0
    for expected in (10.0, 20.0, 40.0, 80.0, 80.0):
        trip(book, t)
        opened = t + 0.2
        assert book.seconds_until_available(D, opened) == pytest.approx(expected - 0.0)
        t = opened + expected
        recover(book, t)
        t += 5.0  # well within the repeat memory


def test_a_quiet_period_forgives_the_offences():
    book = HealthBook(POLICY)
    trip(book, 0.0)
    recover(book, 10.2)
    trip(book, 20.0)  # a repeat: 20 s
    assert book.seconds_until_available(D, 20.2) == pytest.approx(20.0)
    recover(book, 40.2)
    trip(book, 140.3)  # more than repeat_memory after the last recovery: back to the base
    assert book.seconds_until_available(D, 140.5) == pytest.approx(10.0)


def test_a_failed_probe_still_doubles_on_top_of_a_repeat():
    book = HealthBook(POLICY)
    trip(book, 0.0)
    recover(book, 10.2)
    trip(book, 20.0)  # a repeat: 20 s
    book.on_attempt(D, 40.2)
    book.on_failure(D, 40.2)  # the probe failed: 40 s
    assert book.seconds_until_available(D, 40.2) == pytest.approx(40.0)


def test_the_repeat_memory_keeps_a_record_then_lets_it_go():
    book = HealthBook(POLICY)
    trip(book, 0.0)
    recover(book, 10.2)
    book.on_success(D, 50.0)
    assert book.snapshot()[D]["recovered_at"] == 10.2  # still remembered
    assert book.is_available(D, 50.0)
    book.on_success(D, 111.0)
    assert book.snapshot() == {}


def test_an_active_check_closes_an_open_breaker_and_keeps_the_offence():
    book = HealthBook(POLICY)
    trip(book, 0.0)
    assert book.is_ejected(D)
    book.on_probe_success(D, 5.0)  # before the cool-down elapsed
    assert book.state(D, 5.0) == "closed" and not book.is_ejected(D)
    trip(book, 6.0)
    assert book.seconds_until_available(D, 6.2) == pytest.approx(20.0)


def test_an_active_check_ignores_a_mere_cool_down():
    book = HealthBook(POLICY)
    book.on_failure(D, 0.0, retry_after=30.0)
    assert not book.is_ejected(D)
    book.on_probe_success(D, 1.0)
    assert book.unavailable_reason(D, 1.0) == "cooling down"


@pytest.mark.parametrize("kw", [{"threshold": 0.0}, {"threshold": 1.5}, {"window_s": 0.0}, {"min_requests": 0}])
def test_error_rate_rejects_nonsense(kw):
    with pytest.raises(ValueError):
        ErrorRate(**kw)
