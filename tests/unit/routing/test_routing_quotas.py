"""Quotas, the routing view and commitment tiers: pure, on a fake clock and a seeded random source."""

import random
from collections import Counter

import pytest

from skyrelay.config import Deployment, ModelGroup
from skyrelay.routing import CONCURRENCY, QUOTA, HealthBook, QuotaBook, RoutingView, plan
from skyrelay.routing.quotas import DEFAULT_OUTPUT_TOKENS, SLICE_S, WINDOW


def dep(name, **kw):
    return Deployment(name, "g", "openai", model="m", base_url="http://127.0.0.1:1/v1", **kw)


def tiered_group(*deployments, strategy="weighted"):
    levels = sorted({d.tier for d in deployments})
    tiers = tuple(tuple(d for d in deployments if d.tier == t) for t in levels) if len(levels) > 1 else ()
    return ModelGroup("g", strategy=strategy, deployments=tuple(deployments), tiers=tiers)


def test_rpm_refuses_the_next_request_until_the_oldest_leaves_the_window():
    book, d = QuotaBook(), dep("a", rpm=3)
    for t in (0.0, 10.0, 20.0):
        assert book.refusal(d, t, 0) is None
        book.reserve(d, t, 0)
    assert book.refusal(d, 30.0, 0) == QUOTA
    assert book.seconds_until_headroom(d, 30.0, 0) == pytest.approx(WINDOW - 30.0)
    assert book.refusal(d, WINDOW + 0.001, 0) is None  # the first one expired


def test_a_refused_attempt_is_refunded_and_a_sent_one_is_not():
    book, d = QuotaBook(), dep("a", rpm=1)
    entry = book.reserve(d, 0.0, 0)
    book.settle(d, entry, sent=False)
    assert book.refusal(d, 1.0, 0) is None
    book.settle(d, book.reserve(d, 1.0, 0), sent=True)
    assert book.refusal(d, 2.0, 0) == QUOTA


def test_tpm_is_settled_with_reported_usage_and_never_passed_by_more_than_one_estimate():
    book, d = QuotaBook(), dep("a", tpm=1000)
    entry = book.reserve(d, 0.0, 600)  # the estimate
    assert book.refusal(d, 0.0, 600) == QUOTA  # 1200 > 1000
    book.settle(d, entry, sent=True, used_tokens=100)  # the cloud says it used far less
    assert book.refusal(d, 0.0, 600) is None
    # Many requests: the reserved total never passes tpm by more than the one request let through an empty window.
    book, now, total = QuotaBook(), 0.0, 0
    for _ in range(200):
        if book.refusal(d, now, 300) is None:
            book.reserve(d, now, 300)
            total += 300
        now += 0.1
    assert total <= 1000 + 300 and total >= 900


def test_estimate_uses_body_size_and_max_tokens_and_learns_bytes_per_token():
    book, d = QuotaBook(), dep("a", tpm=10_000)
    assert book.estimate(d, 400, None) == 100 + DEFAULT_OUTPUT_TOKENS
    assert book.estimate(d, 400, 50) == 150
    for _ in range(30):  # the cloud keeps reporting 2 bytes per token
        book.settle(d, book.reserve(d, 0.0, 150), sent=True, used_tokens=250, input_tokens=200, body_bytes=400)
    assert book.estimate(d, 400, 50) == pytest.approx(250, abs=3)


def test_upstream_headers_say_none_is_left_until_the_reset():
    book, d = QuotaBook(), dep("a")  # no rpm configured: only the cloud knows its quota
    book.observe("a", 0.0, {"x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "6s",
                            "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "1m0s"})
    assert book.refusal(d, 0.0, 0) is None
    book.reserve(d, 0.0, 10)  # spends the last request the cloud said was left
    assert book.refusal(d, 1.0, 0) == QUOTA
    assert book.seconds_until_headroom(d, 1.0, 0) == pytest.approx(5.0)
    assert book.refusal(d, 6.0, 0) is None


def test_anthropic_and_azure_headers():
    book, d = QuotaBook(), dep("a")
    book.observe("a", 100.0, {"anthropic-ratelimit-requests-remaining": "0",
                              "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z"},
                 wall=1767225600.0)  # 2026-01-01T00:00:00Z
    assert book.refusal(d, 100.0, 0) == QUOTA
    assert book.seconds_until_headroom(d, 100.0, 0) == pytest.approx(30.0)
    book.observe("a", 100.0, {"x-ratelimit-remaining-requests": "0"})  # Azure: no reset header
    assert book.refusal(d, 100.5, 0) == QUOTA and book.refusal(d, 101.0, 0) is None


def test_the_view_combines_health_concurrency_and_quota():
    health, outstanding, quotas = HealthBook(), {"a": 2}, QuotaBook()
    view = RoutingView(health, outstanding, quotas)
    a = dep("a", max_concurrency=2)
    assert view.unavailable_reason(a, 0.0) == CONCURRENCY
    outstanding["a"] = 1
    assert view.unavailable_reason(a, 0.0) is None
    health.on_failure("a", 0.0, retry_after=5)
    assert view.unavailable_reason(a, 0.0) == "cooling down"
    assert view.seconds_until_available(a, "cooling down", 0.0) == 5.0


def test_tier_0_fills_first_then_spills_to_tier_1_and_returns():
    ptu, spill = dep("ptu", rpm=2), dep("spill", tier=1, weight=100.0)
    group = tiered_group(spill, ptu)
    quotas = QuotaBook()
    view, rng, served = RoutingView(quotas=quotas), random.Random(0), []
    for t in range(5):
        chosen = plan(group, {"g": group}, view, float(t), rng).candidates[0]
        quotas.reserve(chosen, float(t), 0)
        served.append(chosen.name)
    assert served == ["ptu", "ptu", "spill", "spill", "spill"]
    result = plan(group, {"g": group}, view, 4.0, rng)
    assert result.skipped[0][:2] == (ptu, QUOTA)
    assert [d.name for d in plan(group, {"g": group}, view, WINDOW + 1.0, rng).candidates] == ["ptu", "spill"]


def test_within_a_tier_the_strategy_decides_and_a_failing_tier_continues_into_the_next():
    a, b, c = dep("a", weight=3.0), dep("b", weight=1.0), dep("c", tier=1)
    group = tiered_group(a, b, c)
    rng, health = random.Random(1), HealthBook()
    firsts = Counter(plan(group, {"g": group}, RoutingView(health), 0.0, rng).candidates[0].name for _ in range(4000))
    assert firsts["c"] == 0 and abs(firsts["a"] / 4000 - 0.75) < 0.03
    assert [d.name for d in plan(group, {"g": group}, RoutingView(health), 0.0, rng).candidates][2] == "c"
    for name in ("a", "b"):
        health.on_failure(name, 0.0, retry_after=10)
    assert [d.name for d in plan(group, {"g": group}, RoutingView(health), 0.0, rng).candidates] == ["c"]


def test_tpm_skip_uses_the_requests_own_estimate():
    class Req:
        body_bytes, max_output, residency = 4000, 100, None  # ~1100 tokens
    quotas = QuotaBook()
    big = dep("big", tpm=1000)
    group = tiered_group(big, dep("other", tier=1))
    quotas.reserve(big, 0.0, 10)
    result = plan(group, {"g": group}, RoutingView(quotas=quotas), 0.0, random.Random(0), Req())
    assert [d.name for d in result.candidates] == ["other"] and result.skipped[0][1] == QUOTA


def test_a_busy_deployments_log_holds_a_slice_per_entry_not_an_attempt():
    """10,000 attempts in a second: a bounded log (one attempt per entry held 60 s of traffic in memory), exact
    totals, and each refund or settle still moves only its own attempt's amounts."""
    book, d = QuotaBook(), dep("a", rpm=1_000_000, tpm=10**9)
    holds = [book.reserve(d, i / 10_000, 10) for i in range(10_000)]
    log = book._logs["a"]
    assert len(log.entries) <= 1.0 / SLICE_S + 1
    assert (log.requests, log.tokens) == (10_000, 100_000)
    book.settle(d, holds[0], sent=False)
    book.settle(d, holds[1], sent=True, used_tokens=3)
    assert (log.requests, log.tokens) == (9_999, 100_000 - 10 - 7)
    assert sum(entry[2] for entry in log.entries) == 9_999 and sum(entry[1] for entry in log.entries) == log.tokens


def test_a_slice_leaves_the_window_with_its_latest_attempt_and_a_late_settle_changes_nothing():
    book, d = QuotaBook(), dep("a", rpm=2)
    first = book.reserve(d, 0.0, 0)
    book.reserve(d, SLICE_S / 2, 0)  # the same slice
    assert book.refusal(d, WINDOW + SLICE_S / 4, 0) == QUOTA  # the second attempt is not a minute old yet
    assert book.refusal(d, WINDOW + SLICE_S, 0) is None  # both are
    book.settle(d, first, sent=False)  # its entry left the totals already: no refund below zero
    assert book._logs["a"].requests == 0
