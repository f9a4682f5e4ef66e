"""Residency, context windows and the vendor concentration cap in plan(): pure, fake clock, seeded rng."""

import random
from collections import Counter

import pytest

from skyrelay.config import Deployment, ModelGroup
from skyrelay.config.model import Concentration
from skyrelay.routing import HealthBook, RoutingView, plan
from skyrelay.routing.policies import CONCENTRATION, CONTEXT_WINDOW, RESIDENCY, ShareBook, parse_residency


def dep(name, kind="openai", group="g", **kw):
    return Deployment(name, group, kind, model="m", base_url="http://127.0.0.1:1/v1", **kw)


def group(name, *deployments, **kw):
    return ModelGroup(name, deployments=tuple(deployments), **kw)


class Req:  # stands in for a RequestContext
    def __init__(self, body_bytes=400, max_output=None, residency=None):
        self.body_bytes, self.max_output, self.residency = body_bytes, max_output, residency


def names(items):
    return [d.name for d in items]


def reasons(result):
    return {d.name: reason for d, reason, _ in result.skipped}


EU, US = dep("eu", geo="eu", region="westeurope"), dep("us", geo="us", region="eastus")


def test_vendor_defaults_from_the_kind_and_can_be_named():
    assert [dep("a", kind).vendor for kind in ("azure", "bedrock", "gemini", "vertex", "anthropic", "openai")] \
        == ["azure", "aws", "google", "google", "anthropic", "openai"]
    assert dep("a", "openai", vendor="acme").vendor == "acme"


def test_residency_keeps_only_deployments_whose_geo_or_region_is_allowed():
    for allowed in ({"eu"}, {"westeurope"}):
        g = group("g", EU, US, residency=frozenset(allowed))
        result = plan(g, {"g": g}, RoutingView(), 0.0, random.Random(0), Req())
        assert names(result.candidates) == ["eu"] and reasons(result) == {"us": RESIDENCY}


def test_the_request_header_narrows_the_group_and_never_widens_it():
    g = group("g", EU, US, residency=frozenset({"eu"}))
    wider = plan(g, {"g": g}, RoutingView(), 0.0, random.Random(0), Req(residency=parse_residency("eu, US")))
    assert names(wider.candidates) == ["eu"]
    outside = plan(g, {"g": g}, RoutingView(), 0.0, random.Random(0), Req(residency=parse_residency("us")))
    assert outside.candidates == [] and reasons(outside) == {"eu": RESIDENCY, "us": RESIDENCY}
    free = group("g", EU, US)
    narrowed = plan(free, {"g": free}, RoutingView(), 0.0, random.Random(0), Req(residency=frozenset({"us"})))
    assert names(narrowed.candidates) == ["us"]


def test_fallback_groups_obey_the_asking_groups_residency():
    us_backup = dep("us-backup", group="backup", geo="us")
    eu_backup = dep("eu-backup", group="backup", geo="eu")
    main = group("g", EU, fallbacks=("backup",), residency=frozenset({"eu"}))
    backup = group("backup", us_backup, eu_backup)
    health = HealthBook()
    for _ in range(10):
        health.on_failure("eu", 0.0)
    result = plan(main, {"g": main, "backup": backup}, RoutingView(health), 0.0, random.Random(0), Req())
    assert names(result.candidates) == ["eu-backup"]
    assert reasons(result) == {"eu": "circuit open", "us-backup": RESIDENCY}


def test_a_prompt_longer_than_a_context_window_skips_that_deployment():
    small, large = dep("small", context_window=50), dep("large", context_window=100_000)
    g = group("g", small, large)
    result = plan(g, {"g": g}, RoutingView(), 0.0, random.Random(0), Req(body_bytes=4000))  # ~1000 tokens
    assert names(result.candidates) == ["large"] and reasons(result) == {"small": CONTEXT_WINDOW}
    fits = plan(g, {"g": g}, RoutingView(), 0.0, random.Random(1), Req(body_bytes=40))
    assert sorted(names(fits.candidates)) == ["large", "small"]


def test_a_prompt_that_fits_no_deployment_goes_to_the_context_fallbacks_first():
    main = group("g", dep("small", context_window=50), fallbacks=("backup",), context_fallbacks=("long",))
    long = group("long", dep("long-1", group="long", context_window=200_000))
    backup = group("backup", dep("backup-1", group="backup"))
    table = {"g": main, "long": long, "backup": backup}
    result = plan(main, table, RoutingView(), 0.0, random.Random(0), Req(body_bytes=4000))
    assert names(result.candidates) == ["long-1", "backup-1"]
    short = plan(main, table, RoutingView(), 0.0, random.Random(0), Req(body_bytes=40))
    assert names(short.candidates) == ["small", "backup-1"]  # the context fallbacks only for a long prompt


def capped_group(on_breach="serve", max_share=0.5, measure="requests"):
    a = dep("a", "azure", weight=9.0, price=_price(1.0))
    b = dep("b", "bedrock", weight=1.0, price=_price(3.0))
    return group("g", a, b, concentration=Concentration(max_share, 300.0, measure, on_breach))


def _price(per_mtok):
    from skyrelay.config import Price
    return Price(input_per_mtok=per_mtok, output_per_mtok=per_mtok)


def serve(g, view, count, *, step=0.1, seed=7):
    """`count` requests a `step` apart, each served by its plan's first candidate; the vendor counts."""
    rng, served = random.Random(seed), Counter()
    for i in range(count):
        now = i * step
        result = plan(g, {"g": g}, view, now, rng, Req())
        if not result.candidates:
            served["refused"] += 1
            continue
        d = result.candidates[0]
        if result.over_cap and d in result.over_cap:
            view.shares.count(view.shares.breaches, "g")
        view.shares.record("g", d.vendor, now, 1.0)
        served[d.vendor] += 1
    return served


def test_a_half_cap_over_two_vendors_weighted_9_to_1_holds_over_1000_requests():
    uncapped = group("g", *capped_group().deployments)
    assert serve(uncapped, RoutingView(), 1000)["azure"] > 850  # the weights alone would send 90%
    view = RoutingView()
    served = serve(capped_group(), view, 1000)
    assert abs(served["azure"] / 1000 - 0.5) < 0.03, served
    assert view.shares.breaches == {}  # the other vendor always had headroom


def test_with_one_vendor_down_serve_keeps_serving_and_counts_each_breach():
    g, health = capped_group("serve"), HealthBook()
    view = RoutingView(health)
    serve(g, view, 20)
    for _ in range(10):
        health.on_failure("b", 2.0)
    served = serve(g, view, 10, step=0.01)
    assert served == {"azure": 10} and view.shares.breaches["g"] >= 9


def test_with_one_vendor_down_refuse_skips_the_vendor_over_its_cap():
    g, health = capped_group("refuse"), HealthBook()
    view = RoutingView(health)
    serve(g, view, 20)
    view.shares.record("g", "azure", 2.0, 1.0)  # azure now carries 11 of 21
    for _ in range(10):
        health.on_failure("b", 2.0)
    result = plan(g, {"g": g}, view, 2.0, random.Random(0), Req())
    assert result.candidates == [] and reasons(result) == {"b": "circuit open", "a": CONCENTRATION}
    assert 0 < result.soonest_available() <= 300.0


def test_refuse_also_skips_the_over_cap_vendor_while_another_can_serve():
    g, view = capped_group("refuse"), RoutingView()
    for t in range(3):
        view.shares.record("g", "azure", float(t), 1.0)
    result = plan(g, {"g": g}, view, 3.0, random.Random(0), Req())
    assert names(result.candidates) == ["b"] and reasons(result) == {"a": CONCENTRATION}


def test_the_cost_measure_weighs_each_request_by_its_price():
    shares = ShareBook()
    shares.record("g", "azure", 0.0, 3.0)
    shares.record("g", "aws", 0.0, 1.0)
    shares.record("g", "aws", 0.0, 1.0)
    policy = Concentration(0.5, 300.0, "cost")
    assert shares.over_cap("g", policy, 1.0) == {"azure"}  # 3 of 5 dollars
    assert shares.over_cap("g", Concentration(0.5, 300.0, "requests"), 1.0) == {"aws"}  # 2 of 3 requests


def test_the_share_window_slides():
    shares, policy = ShareBook(), Concentration(0.5, 10.0)
    shares.record("g", "azure", 0.0, 0.0)
    shares.record("g", "aws", 5.0, 0.0)
    shares.record("g", "aws", 6.0, 0.0)
    assert shares.over_cap("g", policy, 7.0) == {"aws"}  # 2 of 3
    shares.record("g", "azure", 10.5, 0.0)  # the first azure left the window: aws 2 of 3 still
    assert shares.over_cap("g", policy, 10.5) == {"aws"}
    shares.record("g", "azure", 16.5, 0.0)  # both aws entries left: azure 2 of 2
    assert shares.over_cap("g", policy, 16.5) == {"azure"}


@pytest.mark.parametrize("header, expected", [("eu", {"eu"}), (" EU , westeurope ", {"eu", "westeurope"}),
                                              (",", set())])
def test_the_residency_header_is_a_comma_separated_case_insensitive_list(header, expected):
    assert parse_residency(header) == expected


def test_a_busy_vendors_share_window_holds_a_slice_per_entry_and_a_refund_takes_back_one_attempt():
    shares, policy = ShareBook(), Concentration(0.5, 300.0)
    holds = [shares.record("g", "azure", i / 1000, 0.5) for i in range(3000)]  # 3 s of 1,000 attempts/s
    log = shares._groups["g"]["azure"]
    assert len(log.entries) <= 4
    shares.refund("g", "azure", holds[-1])
    assert (log.requests, log.tokens) == (2999, 2999 * 0.5)
    shares.record("g", "aws", 3.0, 0.5)
    assert shares.over_cap("g", policy, 3.0) == {"azure"}
