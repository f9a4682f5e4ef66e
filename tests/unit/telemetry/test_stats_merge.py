"""/admin/stats for several workers: each worker's part, built by its own telemetry from requests it closed, merged
into one gateway's document (sums, aligned buckets, the worst breaker, errors by time, quota shares added up)."""

from __future__ import annotations

import orjson

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.dispatch import Dispatcher
from skyrelay.routing.shared import SharedQuotaBook
from skyrelay.telemetry import Telemetry
from skyrelay.telemetry.activity import BUCKET_S
from skyrelay.workers import worker_share

CONFIG = {"model_groups": {"chat": {
    "concentration": {"max_share": 0.6, "window_s": 300},
    "deployments": [
        {"name": n, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9", "rpm": 10,
         "price": {"input_per_mtok": 1, "output_per_mtok": 2}} for n in ("a", "b")]}}}


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def worker(index: int, started: float) -> tuple[Telemetry, Clock]:
    config = worker_share(parse_config(CONFIG, env={}), index, 2)
    clock = Clock(started)
    return Telemetry(config, Dispatcher.from_config(config, clock=clock)), clock


def serve(t: Telemetry, name: str, end: float, *, failed: bool = False) -> None:
    deployment = next(d for d in t.deployments if d.name == name)
    ctx = RequestContext(arrival=end - 0.5)
    ctx.group = "chat"
    attempt = Attempt(deployment, end - 0.5, 10)
    attempt.finish(end, "failed" if failed else "ok", RuntimeError() if failed else None)
    if not failed:
        attempt.usage = ctx.usage = Usage(1000, 500, 0)
    else:
        ctx.error = RuntimeError()
    ctx.attempts.append(attempt)
    t.on_close(ctx)
    t.activity.sample(t.metrics, end)  # the one-second ticker's look


def over_the_wire(part: dict) -> dict:
    return orjson.loads(orjson.dumps(part))  # what another worker receives


def test_two_workers_figures_add_up_and_the_worst_breaker_shows():
    one, clock_one = worker(0, 1000.0)
    two, clock_two = worker(1, 1025.0)  # started two and a half buckets later (a restarted worker)
    for end in (1001.0, 1002.0, 1031.0):
        clock_one.now = end
        serve(one, "a", end)
    clock_two.now = 1031.0
    serve(two, "a", 1031.0)
    serve(two, "b", 1031.0, failed=True)
    for _ in range(3):  # b's breaker opens on worker 1 only
        two.dispatcher.health.on_failure("b", 1031.0)
    two.dispatcher.shares.record("chat", "openai", 1031.0, 0.0)
    clock_one.now = clock_two.now = 1032.0

    body = one.stats(one.stats_part(0), [over_the_wire(two.stats_part(1))], workers=2)

    assert body["workers"] == {"count": 2, "reporting": 2}
    a, b = body["deployments"]
    assert sum(body["series"]["deployments"]["a"]["ok"]) == 4
    assert sum(body["series"]["deployments"]["b"]["failed"]) == 1
    assert body["series"]["deployments"]["a"]["ok"][-1] == 2  # both workers' 1030-1040 bucket, aligned
    assert len(body["series"]["deployments"]["a"]["ok"]) == 4  # the older worker's buckets since 1000
    assert abs(body["series"]["start"] - one.stats_part()["series"]["start"]) < 0.05  # worker 0's first bucket
    assert b["health"]["breaker"] == "open" and not b["health"]["available"]
    assert [w["breaker"] for w in b["health"]["workers"]] == ["closed", "open"]
    assert a["health"]["available"] and a["share"] == 1.0
    assert a["quota"]["limits"]["requests"]["limit"] == 10  # 5 + 5: each worker's share of rpm 10
    assert body["model_groups"][0]["tiers"][0]["served"] == 4
    assert body["model_groups"][0]["concentration"]["vendors"] == {"openai": 1.0}
    assert [e["deployment"] for e in body["errors"]] == ["b"]
    spend = body["spend"]["teams"][0]["usd"]
    assert abs(spend - 4 * (1000 * 1 + 500 * 2) / 1e6) < 1e-12
    assert body["uptime_s"] == 32.0  # the oldest worker's age


def test_errors_are_merged_newest_first_and_a_single_worker_is_its_own_document():
    one, clock_one = worker(0, 0.0)
    two, clock_two = worker(1, 0.0)
    for t, clock, end in ((one, clock_one, 1.0), (two, clock_two, 2.0), (one, clock_one, 3.0)):
        clock.now = end
        serve(t, "a", end, failed=True)
    for t, clock, name in ((one, clock_one, "x"), (two, clock_two, "y")):
        for error in t.activity.errors:
            error["request_id"] = f"{name}{error['time']}"
    ones = one.stats_part(0)
    merged = one.stats(ones, [over_the_wire(two.stats_part(1))], workers=2)
    times = [e["time"] for e in merged["errors"]]
    assert times == sorted(times, reverse=True) and len(times) == 3
    alone = one.stats(ones)
    assert alone["workers"] == {"count": 1, "reporting": 1}
    assert sum(alone["series"]["deployments"]["a"]["failed"]) == 2
    assert merged["deployments"][0]["errors_per_s"] > alone["deployments"][0]["errors_per_s"]


def test_a_quota_read_from_the_shared_snapshot_is_taken_once_not_added():
    config = parse_config({**CONFIG, "state": {"backend": "redis", "url": "redis://127.0.0.1:6379/0"}}, env={})
    workers = []
    for index in range(2):  # as on Redis: each worker's book holds every replica's count, against the whole rpm
        share = worker_share(config, index, 2)
        quotas = SharedQuotaBook()
        quotas.load({"a": [7, 0]}, {})
        workers.append(Telemetry(share, Dispatcher.from_config(share, clock=Clock(0.0), quotas=quotas)))
    one, two = workers
    body = one.stats(one.stats_part(0), [over_the_wire(two.stats_part(1))], workers=2)
    assert body["deployments"][0]["quota"]["limits"]["requests"] == {"limit": 10, "used": 7}
    assert body["deployments"][0]["quota"]["headroom"] == 0.3


def test_the_series_keeps_the_last_hour_when_one_worker_is_a_bucket_ahead():
    one, clock_one = worker(0, 0.0)
    two, clock_two = worker(1, 0.0)
    clock_one.now = 4000.0
    clock_two.now = 4000.0 + BUCKET_S  # answered a bucket later
    body = one.stats(one.stats_part(0), [two.stats_part(1)], workers=2)
    assert len(body["series"]["deployments"]["a"]["ok"]) == 360
