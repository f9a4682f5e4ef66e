"""The latency book: peak-sensitive EWMA, its decay, the windowed percentile. Times are given, never read."""

import pytest

from skyrelay.routing.latency import TAU_S, WINDOW_S, LatencyBook, PeakEwma, WindowedHistogram


def test_a_sample_above_the_average_replaces_it_at_once():
    ewma = PeakEwma()
    for t in range(20):
        ewma.observe(100.0 + t, 0.1)
    assert ewma.read(119.0) == pytest.approx(0.1)
    ewma.observe(120.0, 0.5)  # one slow answer
    assert ewma.read(120.0) == 0.5


def test_a_sample_below_moves_it_down_gradually():
    ewma = PeakEwma()
    ewma.observe(100.0, 0.5)
    ewma.observe(100.1, 0.1)  # soon after: a small step, not a jump down
    assert 0.4 < ewma.read(100.1) < 0.5
    t = 100.1
    for _ in range(100):
        t += 0.1
        ewma.observe(t, 0.1)
    assert ewma.read(t) == pytest.approx(0.1, rel=0.05)


def test_an_idle_value_decays_towards_zero_with_the_time_constant():
    ewma = PeakEwma()
    ewma.observe(100.0, 1.0)
    assert ewma.read(100.0 + TAU_S) == pytest.approx(1 / 2.718281828, rel=1e-6)
    assert ewma.read(100.0 + 10 * TAU_S) < 1e-4
    assert PeakEwma().read(5.0) == 0.0  # never measured: the best there is, so it gets tried


def test_the_percentile_of_a_window_within_a_bucket():
    h = WindowedHistogram()
    for i in range(100):
        h.observe(1000.0, 0.010 if i < 90 else 0.500)
    assert 0.010 <= h.percentile(1000.0, 50) <= 0.010 * 1.19
    assert 0.010 <= h.percentile(1000.0, 90) <= 0.012
    assert 0.500 <= h.percentile(1000.0, 95) <= 0.500 * 1.19
    assert WindowedHistogram().percentile(1000.0, 95) is None


def test_the_percentile_forgets_after_two_windows():
    h = WindowedHistogram()
    h.observe(1000.0, 2.0)
    h.observe(1000.0 + WINDOW_S, 0.01)  # the slow one is in the previous window: still counted
    assert h.percentile(1000.0 + WINDOW_S, 99) >= 2.0
    assert h.percentile(1000.0 + 2 * WINDOW_S, 99) <= 0.012  # only the fast one's window is left
    assert h.percentile(1000.0 + 4 * WINDOW_S, 99) is None


def test_a_cached_percentile_changes_with_a_new_sample():
    h = WindowedHistogram()
    h.observe(1000.0, 0.01)
    assert h.percentile(1000.0, 95) <= 0.012
    h.observe(1000.0, 3.0)
    assert h.percentile(1000.0, 95) >= 3.0


def test_a_whole_answer_charges_its_ttft_with_what_the_known_token_rate_does_not_explain():
    book = LatencyBook()
    book.observe_tokens("a", 100.0, 1.0, 100)  # 10 ms a token, measured on a stream
    book.observe_whole("a", 100.0, 0.3, 20)  # 300 ms for 20 tokens: 100 ms of it is waiting for the first
    assert book.ttft("a", 100.0) == pytest.approx(0.1)
    book.observe_whole("b", 100.0, 0.3, 20)  # no token rate known: the whole time
    assert book.ttft("b", 100.0) == pytest.approx(0.3)
    assert book.ttft("never", 100.0) == 0.0 and book.ttft_percentile("never", 100.0, 95) is None


def test_the_mean_output_follows_served_answers():
    book = LatencyBook()
    book.observe_output(100)
    assert book.mean_output == 100
    for _ in range(100):
        book.observe_output(10)
    assert book.mean_output == pytest.approx(10, abs=0.1)
