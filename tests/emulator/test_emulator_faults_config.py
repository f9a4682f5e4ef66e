"""Fault plans and the emulator's configuration, without any server."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyrelay.emulator import CloudSpec, EmulatorConfigError, load_emulator_config
from skyrelay.emulator.config import specs_from_dict
from skyrelay.emulator.faults import FaultConfigError, FaultPlan, parse_fault, parse_faults

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emulator.yaml"


def fired(plan: FaultPlan, count: int, operation: str = "chat", stream: bool = False) -> list[int]:
    """The plan's request numbers, among the next `count` requests, that suffered a fault."""
    hits = []
    for _ in range(count):
        if plan.next_request(operation, stream) is not None:
            hits.append(plan.requests)
    return hits


def test_triggers_at_every_times_and_first_match_wins():
    assert fired(FaultPlan(parse_faults([{"status": 500, "at": [3, 4]}])), 10) == [3, 4]
    assert fired(FaultPlan(parse_faults([{"status": 503, "every": 5}])), 12) == [5, 10]
    assert fired(FaultPlan(parse_faults([{"kind": "reset", "times": 2}])), 5) == [1, 2]
    plan = FaultPlan(parse_faults([{"status": 429, "at": [2]}, {"status": 500, "every": 2}]))
    kinds = [(f.status if f else None) for f in (plan.next_request("chat", False) for _ in range(4))]
    assert kinds == [None, 429, None, 500]


def test_rate_is_seeded_and_roughly_right():
    a = fired(FaultPlan(parse_faults([{"status": 500, "rate": 0.2}]), seed=1), 1000)
    b = fired(FaultPlan(parse_faults([{"status": 500, "rate": 0.2}]), seed=1), 1000)
    assert a == b and 150 < len(a) < 250


def test_match_and_kind_filters():
    plan = FaultPlan(parse_faults([{"status": 500, "match": "embeddings"}]))
    assert fired(plan, 3, "chat") == [] and fired(plan, 2, "embeddings") == [4, 5]
    cut = FaultPlan(parse_faults([{"kind": "cut_stream", "after_chunks": 2}]))
    assert fired(cut, 2, "chat", stream=False) == [] and fired(cut, 1, "chat", stream=True) == [3]
    content = FaultPlan(parse_faults([{"kind": "content_filter"}]))
    assert fired(content, 1, "embeddings") == [] and fired(content, 1, "chat") == [2]


def test_fault_defaults():
    assert parse_fault({"status": 429}).retry_after == 1.0
    assert parse_fault({"status": 429, "retry_after": None}).retry_after is None
    assert parse_fault({"status": 500}).retry_after is None
    assert parse_fault({"kind": "cut_stream"}).after_chunks == 3
    assert parse_fault({"kind": "cut_stream"}).ending == "reset"
    assert parse_fault({"kind": "cut_stream", "ending": "close"}).to_dict()["ending"] == "close"
    assert parse_fault({"kind": "slow"}).extra_ms == 500
    assert parse_fault({"kind": "content_filter"}).target == "prompt"
    assert parse_fault({"kind": "hang"}).seconds is None
    assert parse_fault({"status": 429, "every": 2}).to_dict()["every"] == 2


@pytest.mark.parametrize("raw, expected", [
    ({"kind": "hng"}, "faults[0].kind"),
    ({"status": "500"}, "faults[0].status: expected int"),
    ({"status": 500, "rate": 2}, "faults[0].rate: must be between"),
    ({"status": 500, "at": [0]}, "faults[0].at"),
    ({"status": 500, "match": "chats"}, "faults[0].match"),
    ({"kind": "cut_stream", "after_chunk": 3}, "unknown key(s) ['after_chunk']"),
    ({"kind": "content_filter", "target": "both"}, "faults[0].target"),
    ({"kind": "cut_stream", "ending": "eof"}, "faults[0].ending: expected one of reset, clean, close"),
    ({"kind": "reset", "ending": "clean"}, "unknown key(s) ['ending']"),
    ("boom", "faults[0]: expected a mapping"),
])
def test_fault_errors_name_the_path(raw, expected):
    with pytest.raises(FaultConfigError, match=None) as info:
        parse_faults([raw])
    assert expected in str(info.value)


def test_example_config_loads():
    specs = load_emulator_config(EXAMPLE)
    by_name = {s.name: s for s in specs}
    assert by_name["azure-eastus"].port == 9101 and by_name["azure-eastus"].protocol == "openai"
    assert by_name["aws-useast1"].port == 9102 and by_name["aws-useast1"].protocol == "openai"


@pytest.mark.parametrize("data, expected", [
    ({}, "top-level `clouds:`"),
    ({"clouds": [{"protocol": "openai"}]}, "clouds[0].name: required"),
    ({"clouds": [{"name": "a", "protocol": "smoke"}]}, "clouds[0].protocol"),
    ({"clouds": [{"name": "a", "prot": "openai"}]}, "unknown key(s) ['prot']"),
    ({"clouds": [{"name": "a", "port": "80"}]}, "clouds[0].port"),
    ({"clouds": [{"name": "a", "output_tokens": [9, 3]}]}, "clouds[0].output_tokens"),
    ({"clouds": [{"name": "a", "faults": [{"kind": "nope"}]}]}, "clouds[0].faults[0].kind"),
    ({"clouds": [{"name": "a", "deployments": [{"nom": "x"}]}]}, "clouds[0].deployments[0]"),
    ({"clouds": [{"name": "a"}, {"name": "a"}]}, "clouds[1].name"),
    ({"clouds": [{"name": "a", "port": 9}, {"name": "b", "port": 9}]}, "clouds[1].port"),
])
def test_config_errors_name_the_yaml_path(data, expected):
    with pytest.raises(EmulatorConfigError) as info:
        specs_from_dict(data)
    assert expected in str(info.value)


def test_config_accepts_ranges_deployment_mappings_and_options(tmp_path):
    path = tmp_path / "emu.yaml"
    path.write_text(
        "clouds:\n"
        "  - {name: az, protocol: azure, deployments: [d1, {name: d2, model: gpt-4o}], output_tokens: [5, 9],\n"
        "     api_key: secret-value, options: {region: westeurope}}\n"
    )
    (spec,) = load_emulator_config(path)
    assert spec.output_tokens == (5, 9) and spec.deployments[1] == {"name": "d2", "model": "gpt-4o"}
    assert spec.options == {"region": "westeurope"}
    assert "secret-value" not in repr(spec)  # never a secret in a repr


def test_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(EmulatorConfigError):
        load_emulator_config(tmp_path / "missing.yaml")
    assert CloudSpec().port == 0  # tests build clouds in Python: port 0 by default
