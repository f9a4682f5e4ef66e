"""Requests drawn from the traffic model, a span of simulated time at a time: Poisson counts per second at that
second's rate, uniform times inside it, and each request's model group, team, prompt and output sizes and shared
prefix (-1: none). Returned as plain lists, which the event engine's loop indexes fastest."""

from __future__ import annotations

import numpy as np

from .scenario import Scenario


class Arrivals:
    def __init__(self, scenario: Scenario):
        self.traffic = scenario.traffic
        self.rng = np.random.default_rng(scenario.seed)

    def draw(self, start: float, end: float) -> tuple[list, ...]:
        traffic, rng = self.traffic, self.rng
        seconds = np.arange(np.floor(start), end)
        widths = np.minimum(seconds + 1, end) - np.maximum(seconds, start)
        counts = rng.poisson(traffic.rate(seconds + 0.5) * widths)
        n = int(counts.sum())
        times = np.repeat(np.maximum(seconds, start), counts) + rng.random(n) * np.repeat(widths, counts)
        times.sort()
        groups = _pick(rng, [s for _, s in traffic.mix], n)
        teams = _pick(rng, [s for _, s in traffic.teams], n)
        inputs = traffic.input_tokens.sample(rng, n)
        outputs = traffic.output_tokens.sample(rng, n)
        prefixes = np.full(n, -1, dtype=np.int64)
        if traffic.prefixes is not None:
            shared = rng.random(n) < traffic.prefixes.share
            prefixes[shared] = rng.integers(0, traffic.prefixes.count, int(shared.sum()))
            inputs = np.where(shared, np.maximum(inputs, traffic.prefixes.tokens), inputs)
        return (times.tolist(), groups.tolist(), teams.tolist(), inputs.tolist(), outputs.tolist(),
                prefixes.tolist())


def _pick(rng: np.random.Generator, shares: list[float], n: int) -> np.ndarray:
    if len(shares) == 1:
        return np.zeros(n, dtype=np.int64)
    return np.searchsorted(np.cumsum(shares), rng.random(n) * sum(shares)).clip(0, len(shares) - 1)
