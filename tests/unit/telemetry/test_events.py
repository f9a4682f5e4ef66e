"""The event lines no single request tells, found by EventLog.watch on a fake clock: a deployment's own quota
running out, a model group spilling to its next tier and back, its vendor cap breached; Redis lost and found."""

from __future__ import annotations

import logging

import pytest

from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.dispatch import Dispatcher
from skyrelay.state.redis import RedisState
from skyrelay.telemetry import Telemetry


def deployment(name: str, **extra) -> dict:
    return {"name": name, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9", **extra}


CONFIG = {"model_groups": {
    "chat": {"deployments": [deployment("base", rpm=2), deployment("spill", tier=1)]},
    "capped": {"concentration": {"max_share": 0.5}, "deployments": [deployment("x", vendor="xv"),
                                                                    deployment("y", vendor="yv")]},
}}


@pytest.fixture
def world():
    config = parse_config(CONFIG, env={})
    clock = [1000.0]
    dispatcher = Dispatcher.from_config(config, clock=lambda: clock[0])
    telemetry = Telemetry(config, dispatcher)
    deployments = {d.name: d for d in config.deployments()}
    return telemetry, dispatcher, deployments, clock


def served(telemetry, deployment, group: str, now: float) -> None:
    ctx = RequestContext(arrival=now - 0.1)
    ctx.group = group
    attempt = Attempt(deployment, now - 0.1, 10)
    attempt.finish(now, "ok")
    ctx.attempts.append(attempt)
    telemetry.on_close(ctx)
    telemetry.activity.sample(telemetry.metrics, now)


def events(caplog) -> list[tuple[str, dict]]:
    return [(r.event, vars(r)) for r in caplog.records if r.name == "skyrelay.events" and hasattr(r, "event")]


def watch(telemetry, dispatcher, clock) -> None:
    telemetry.events.watch(dispatcher, telemetry.config.model_groups, telemetry.activity, clock[0])


def test_a_quota_at_its_limit_is_told_once(world, caplog):
    telemetry, dispatcher, deployments, clock = world
    caplog.set_level(logging.INFO, logger="skyrelay.events")
    for _ in range(2):
        dispatcher.quotas.reserve(deployments["base"], clock[0], 10)
    watch(telemetry, dispatcher, clock)
    watch(telemetry, dispatcher, clock)
    assert [(name, fields["deployment"]) for name, fields in events(caplog)] == [("quota_exhausted", "base")]
    clock[0] += 61  # the window slid past both: re-armed, silently
    watch(telemetry, dispatcher, clock)
    assert telemetry.events.exhausted == set()


def test_spillover_starts_with_the_next_tier_serving_and_ends_after_a_quiet_spell(world, caplog):
    telemetry, dispatcher, deployments, clock = world
    caplog.set_level(logging.INFO, logger="skyrelay.events")
    served(telemetry, deployments["base"], "chat", clock[0])
    watch(telemetry, dispatcher, clock)
    assert events(caplog) == []
    served(telemetry, deployments["spill"], "chat", clock[0])
    watch(telemetry, dispatcher, clock)
    clock[0] += 5
    watch(telemetry, dispatcher, clock)
    assert [name for name, _ in events(caplog)] == ["spillover_started"]
    clock[0] += 40
    watch(telemetry, dispatcher, clock)
    assert [(name, fields["model_group"]) for name, fields in events(caplog)] == [
        ("spillover_started", "chat"), ("spillover_ended", "chat")]


def test_a_breach_of_the_vendor_cap_is_told_with_its_count(world, caplog):
    telemetry, dispatcher, _, clock = world
    caplog.set_level(logging.INFO, logger="skyrelay.events")
    shares = dispatcher.shares
    shares.count(shares.breaches, "capped")
    shares.count(shares.breaches, "capped")
    shares.count(shares.refusals, "capped")
    watch(telemetry, dispatcher, clock)
    watch(telemetry, dispatcher, clock)
    ((name, fields),) = events(caplog)
    assert name == "concentration_breach" and (fields["served"], fields["refused"]) == (2, 1)


def test_config_reloaded_is_an_event_line(world, caplog):
    telemetry = world[0]
    caplog.set_level(logging.INFO, logger="skyrelay.events")
    telemetry.events.config_reloaded("gateway.yaml", ["new"], [])
    ((name, fields),) = events(caplog)
    assert name == "config_reloaded" and fields["added"] == ["new"]


async def test_losing_redis_is_an_event_line(caplog):
    caplog.set_level(logging.WARNING, logger="skyrelay.state")
    state = RedisState("redis://127.0.0.1:1/0", prefix="skyrelay-test-events:")
    try:
        await state.check()
    finally:
        await state.aclose()
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "redis_fallback"]
    assert record.error and "sk-" not in record.getMessage()


def test_a_reload_reprices_adds_rings_and_says_so(world, caplog):
    telemetry = world[0]
    caplog.set_level(logging.INFO, logger="skyrelay.events")
    grown = {"model_groups": {**CONFIG["model_groups"], "new": {"deployments": [
        deployment("fresh", price={"input_per_mtok": 1, "output_per_mtok": 1})]}}}
    telemetry.reconfigure(parse_config(grown, env={}), "gateway.yaml", ["fresh"], [])
    assert "fresh" in telemetry.activity.rings and "fresh" in telemetry.pricing.priced
    assert [name for name, _ in events(caplog)] == ["config_reloaded"]
