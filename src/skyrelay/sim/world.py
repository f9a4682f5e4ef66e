"""What a scenario's events change, for either engine: the model groups (a price), the deployments that are down
(an outage, a deployment not added yet) and each cloud's quota. `timeline` turns the events into changes at times;
an engine applies those due and reads the world."""

from __future__ import annotations

import dataclasses

from ..emulator.capacity_config import Quota
from .scenario import Scenario


class World:
    __slots__ = ("groups", "down", "quotas", "version")

    def __init__(self, scenario: Scenario):
        self.groups = dict(scenario.config.model_groups)
        self.down: set[str] = set()
        self.quotas = {name: cloud.capacity.quota for name, cloud in scenario.clouds.items()}
        self.version = 0  # bumped by every change: engines cache what they derive from the world by it

    def deployment(self, name: str):
        for group in self.groups.values():
            for d in group.deployments:
                if d.name == name:
                    return d
        return None

    def set_price(self, name: str, price) -> None:
        """Every group listing the deployment gets a copy of it with the new price (configs are immutable)."""
        for key, group in self.groups.items():
            if not any(d.name == name for d in group.deployments):
                continue

            def swap(members):
                return tuple(dataclasses.replace(d, price=price) if d.name == name else d for d in members)

            self.groups[key] = dataclasses.replace(group, deployments=swap(group.deployments),
                                                   tiers=tuple(swap(tier) for tier in group.tiers))


def timeline(scenario: Scenario) -> list[tuple[float, object]]:
    """(time, change(world)) in time order; changes at time 0 (a deployment added later starts down) included."""
    changes: list[tuple[float, int, object]] = []
    order = 0

    def at(when: float, change) -> None:
        nonlocal order
        changes.append((when, order, change))
        order += 1

    for event in scenario.events:
        for name in event.targets:
            if event.kind == "outage":
                at(event.at, _down(name, True))
                at(event.until, _down(name, False))
            elif event.kind == "add":
                at(0.0, _down(name, True))
                at(event.at, _down(name, False))
            elif event.kind == "quota":
                before = scenario.clouds[name].capacity.quota
                base = before or Quota(rpm=None)
                at(event.at, _quota(name, dataclasses.replace(base, **event.values)))
                if event.until is not None:
                    at(event.until, _quota(name, before))
            elif event.kind == "price":
                deployment = scenario.config.deployment(name)
                at(event.at, _price(name, dataclasses.replace(deployment.price, **event.values)))
                if event.until is not None:
                    at(event.until, _price(name, deployment.price))
    changes.sort(key=lambda c: (c[0], c[1]))
    return [(when, change) for when, _, change in changes]


def _down(name: str, down: bool):
    def change(world: World) -> None:
        (world.down.add if down else world.down.discard)(name)
        world.version += 1
    return change


def _quota(name: str, quota):
    def change(world: World) -> None:
        world.quotas[name] = quota
        world.version += 1
    return change


def _price(name: str, price):
    def change(world: World) -> None:
        world.set_price(name, price)
        world.version += 1
    return change
