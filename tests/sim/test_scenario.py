"""Scenario files: mistakes named by their YAML path, the gateway's own included; the CLI options that edit it."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyrelay.config.model import ConfigError
from skyrelay.sim.run import parse_event_option, set_field, with_overrides
from skyrelay.sim.scenario import build_scenario, load_scenario, sweep_values
from tests.sim.scenarios import deployment


def problems(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build_scenario(data, Path("."), env={})
    return str(info.value)


def base(**extra) -> dict:
    return {"gateway": {"model_groups": {"chat": {"deployments": [deployment("a", region="us-east-1")]}}},
            "traffic": {"rps": 10}, **extra}


def test_a_good_scenario_reads():
    s = build_scenario(base(clouds={"a": {"ttft_ms": 100, "concurrency": 4, "queue": 2}},
                            events=[{"outage": "us-east-1", "at": "01:00", "until": "02:00"}]), Path("."), env={})
    assert s.clouds["a"].capacity.concurrency == 4
    assert s.events[0].targets == ("a",) and s.events[0].at == 3600


def test_mistakes_name_their_paths():
    text = problems(base(clouds={"b": {}, "a": {"ttft_ms": -1, "speed": 3}},
                         traffic={"rps": 0, "mix": {"chta": 1}},
                         events=[{"outage": ["nope"], "at": "25:00x"}, {"at": 5}], surprise=1))
    for expected in ("clouds.b: no deployment", "clouds.a.ttft_ms", "clouds.a.speed: unknown key",
                     "traffic.rps", "traffic.mix.chta", "events[0].outage[0]: no deployment or region",
                     "events[0].at", "events[1]: an event is exactly one of", "surprise: unknown key"):
        assert expected in text, (expected, text)


def test_capacity_mistakes_use_the_emulators_words():
    assert "clouds.a.queue: needs `concurrency`" in problems(base(clouds={"a": {"queue": 3}}))


def test_the_gateway_configurations_own_mistakes_are_prefixed():
    text = problems({"gateway": {"model_groups": {"chat": {"deployments": [{"kind": "nope", "model": "m"}]}}},
                     "traffic": {"rps": 1}})
    assert "gateway.model_groups.chat.deployments[0].kind" in text


def test_an_included_gateway_file(tmp_path):
    (tmp_path / "gw.yaml").write_text("model_groups:\n  chat:\n    deployments:\n"
                                      "      - {name: a, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n")
    (tmp_path / "s.yaml").write_text("gateway: gw.yaml\ntraffic: {rps: 5}\n")
    assert load_scenario(tmp_path / "s.yaml").config.deployment("a") is not None
    (tmp_path / "bad.yaml").write_text("gateway: missing.yaml\ntraffic: {rps: 5}\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_scenario(tmp_path / "bad.yaml")


def test_command_line_events_and_sweeps():
    assert parse_event_option("outage=a@14:00-16:00") == {"outage": ["a"], "at": "14:00", "until": "16:00"}
    with pytest.raises(ConfigError, match="--event"):
        parse_event_option("flood=a")
    raw = with_overrides(base(), ["outage=a@10-20"], 15)
    assert raw["duration_s"] == 15 and raw["events"][0]["until"] == 15
    assert sweep_values("0:20000:5000") == (0, 5000, 10000, 15000, 20000)
    assert sweep_values("1:0:1") is None
    edited = set_field(base(), Path("."), "deployments.a.rpm", 600)
    assert edited["gateway"]["model_groups"]["chat"]["deployments"][0]["rpm"] == 600
    assert set_field(base(), Path("."), "clouds.a.concurrency", 8)["clouds"]["a"]["concurrency"] == 8


def test_a_sweep_marks_the_cheapest_point_meeting_the_objective(tmp_path):
    import json

    from skyrelay.sim.run import parse_sweep_option, run_sweep

    raw = {"gateway": {"model_groups": {"chat": {"deployments": [
        deployment("reserved", tier=0, max_concurrency=50),
        deployment("slow-payg", tier=1, price={"input_per_mtok": 5, "output_per_mtok": 20})]}},
        "commitments": [{"name": "units", "kind": "reserved", "vendor": "openai", "deployments": ["reserved"],
                         "cost_per_hour": 1, "start": "2026-01-01", "end": "2027-01-01"}]},
        "duration_s": 600, "engine": "flow", "objective": {"ttft_ms": 1000},
        "traffic": {"rps": 40, "input_tokens": 500, "output_tokens": 50},
        "clouds": {"reserved": {"ttft_ms": 200, "tokens_per_second": 100, "concurrency": 50},
                   "slow-payg": {"ttft_ms": 3000}},
        "sweep": {"field": "clouds.reserved.concurrency", "values": [0, 10, 30, 60, 90],
                  "cost_per_hour_each": {"units": 2.0}}}
    from skyrelay.sim.scenario import build_scenario

    sweep = build_scenario(raw, tmp_path, env={}).sweep
    assert run_sweep(raw, tmp_path, "s.yaml", sweep, None, tmp_path, True) == 0
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert [p["value"] for p in result["skipped"]] == [0]  # concurrency 0 is refused: that point alone is left out
    met = [p for p in result["points"] if p["met"]]
    assert met and result["cheapest_meeting_objective"]["total_usd"] == min(p["total_usd"] for p in met)
    assert not result["points"][0]["met"]  # 10 slots: most of the traffic waits on the slow cloud
    assert (tmp_path / "frontier.png").exists()
    assert parse_sweep_option("traffic.rps=10:30:10").values == (10, 20, 30)
