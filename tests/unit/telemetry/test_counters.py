"""The hour's ring of 10 s buckets sampled from the counters, spend by team, and the hedge counters, fed with closed
contexts on a fake clock."""

from __future__ import annotations

import pytest

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.telemetry.activity import BUCKET_S, BUCKETS, Activity
from skyrelay.telemetry.metrics import Metrics, Pricing, spend

CONFIG = {"model_groups": {"chat": {"deployments": [
    {"name": n, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9",
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}} for n in ("a", "b")]}}}


def closed(deployments, end: float, *, fail_first: bool = False, hedge_wins: bool = False) -> RequestContext:
    ctx = RequestContext(arrival=end - 0.5)
    ctx.group = "chat"
    a, b = deployments
    if fail_first or hedge_wins:
        first = Attempt(a, end - 0.5, 10)
        first.finish(end - 0.2, "cancelled" if hedge_wins else "failed", None if hedge_wins else RuntimeError())
        ctx.attempts.append(first)
    served = Attempt(b, end - 0.2, 10, hedged=hedge_wins)
    served.finish(end, "ok")
    served.usage = ctx.usage = Usage(1000, 500, 0)
    ctx.attempts.append(served)
    ctx.hedged = hedge_wins
    return ctx


def test_the_ring_samples_the_counters_per_bucket_and_forgets_what_is_an_hour_old():
    deployments = parse_config(CONFIG, env={}).deployments()
    metrics = Metrics(Pricing(deployments))
    activity = Activity(deployments, now=0.0)
    for end in (1.0, 2.0, 15.0):
        ctx = closed(deployments, end, fail_first=True)
        metrics.observe(ctx, 200, end)
        activity.note_errors(ctx, 200)
        activity.sample(metrics, end)
    activity.sample(metrics, 19.0)  # nothing new: nothing added twice
    slots, span = activity.window(19.0, 60)
    assert activity.totals("b", slots)[0] == 3 and activity.totals("a", slots)[:2] == (0, 3)
    assert activity.totals("b", slots)[2] == pytest.approx(3 * 0.2)
    assert span == 19.0  # a young process: the rate's span is its age, not the window
    assert activity.series("b", slots)["ok"] == [2, 1]
    assert spend(metrics) == {(None, "chat", "openai"): pytest.approx(3 * (1000 + 1000) / 1e6)}
    assert len(activity.errors) == 3 and activity.errors[-1]["deployment"] == "a"

    later = BUCKET_S * BUCKETS + 15.0  # an hour on: the same bucket index, zeroed on the way
    metrics.observe(closed(deployments, later), 200, later)
    activity.sample(metrics, later)
    slots, _ = activity.window(later, 60)
    assert activity.totals("b", slots)[0] == 1 and activity.totals("a", slots)[1] == 0
    hour, _ = activity.window(later, BUCKET_S * BUCKETS)
    assert len(hour) == BUCKETS and sum(activity.series("b", hour)["ok"]) == 1


def test_spend_splits_the_deployments_cost_between_teams_and_the_rest():
    deployments = parse_config(CONFIG, env={}).deployments()
    metrics = Metrics(Pricing(deployments))
    teamed = closed(deployments, 1.0)
    teamed.team = "research"
    metrics.observe(teamed, 200, 1.0)
    metrics.observe(closed(deployments, 2.0), 200, 2.0)
    each = (1000 + 1000) / 1e6
    assert spend(metrics) == {("research", "chat", "openai"): pytest.approx(each),
                              (None, "chat", "openai"): pytest.approx(each)}


def test_hedged_requests_are_counted_by_who_answered():
    config = parse_config(CONFIG, env={})
    deployments = config.deployments()
    metrics = Metrics(Pricing(deployments))
    metrics.observe(closed(deployments, 1.0, hedge_wins=True), 200, 1.0)
    slow = closed(deployments, 2.0)
    slow.hedged = True
    metrics.observe(slow, 200, 2.0)
    metrics.observe(closed(deployments, 3.0), 200, 3.0)
    assert (metrics.groups["chat"].hedged, metrics.groups["chat"].hedge_wins) == (2, 1)
    assert metrics.routes[("chat", "a")].results == {"cancelled": 1}


def test_without_the_ledger_the_counters_price_by_the_ledgers_own_function():
    from skyrelay.ledger.money import record_costs

    config = parse_config({**CONFIG, "model_groups": {"chat": {"deployments": [
        {**CONFIG["model_groups"]["chat"]["deployments"][0], "price": {"input_per_mtok": 1, "output_per_mtok": 2,
                                                                      "discount": 0.25}},
        CONFIG["model_groups"]["chat"]["deployments"][1]]}},
        "commitments": [{"name": "c", "kind": "spend", "vendor": "openai", "deployments": ["a"],
                         "amount_usd": 100, "discount": 0.1, "start": "2026-01-01", "end": "2099-01-01"}]}, env={})
    deployments = config.deployments()
    metrics = Metrics(Pricing(deployments, config.commitments))
    ctx = RequestContext(arrival=0.5)
    ctx.group = "chat"
    served = Attempt(deployments[0], 0.5, 10)
    served.finish(1.0, "ok")
    served.usage = ctx.usage = Usage(1000, 500, 0)
    ctx.attempts.append(served)
    listed, billed, _, name = record_costs(deployments[0], served.usage, 1.8e9, config.commitments)
    assert metrics.observe(ctx, 200, 1.0) == pytest.approx(billed) and name == "c"
    route = metrics.routes[("chat", "a")]
    assert (route.cost, route.list_cost) == (pytest.approx(billed), pytest.approx(listed))
    assert billed == pytest.approx(listed * 0.75 * 0.9)
