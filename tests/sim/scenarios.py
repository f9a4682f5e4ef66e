"""Small scenarios for the simulator's tests, as the Python data a scenario file holds."""

from __future__ import annotations

from pathlib import Path

from skyrelay.sim.scenario import build_scenario


def deployment(name: str, **extra) -> dict:
    return {"name": name, "kind": "openai", "base_url": f"http://127.0.0.1:9/{name}/v1", "api_key": "k",
            "model": "m", **extra}


def scenario(deployments: list[dict], clouds: dict, traffic: dict, **extra):
    data = {"gateway": {"model_groups": {"chat": {"deployments": deployments}}}, "clouds": clouds,
            "traffic": traffic, **extra}
    return build_scenario(data, Path("."), env={})
