"""The traffic model: how many requests arrive when, for which model group and team, of which sizes.

    traffic:
      rps: 300                               # the peak (or flat) rate, requests per second
      diurnal: {peak_hour: 15, trough: 0.3}  # a cosine day: 30% of the peak at 03:00, the peak at 15:00
      curve: [[0, 0.3], [9, 0.8], [15, 1]]   # or (hour, share of the peak) points, linear, repeating daily
      bursts: [{at: "10:00", duration_s: 600, factor: 2}]
      mix: {chat: 0.8, code: 0.2}            # model groups (default: the first one)
      teams: {search: 0.6, assistant: 0.4}
      input_tokens: {mean: 800, spread: 0.5} # log-normal: spread is sigma of the log (0: every request the mean)
      output_tokens: {mean: 200, spread: 0.6}
      max_tokens: 1024                       # the cap clients send (what quotas are charged at arrival)
      streaming: 0.7                         # share of streamed requests
      prefix_sharing: {share: 0.5, prefixes: 20, tokens: 2048}  # requests opening with one of 20 shared prefixes

Arrivals are Poisson at the rate of the moment (the event engine), or its expectation (the aggregated one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import fields
from ..config.fields import Context, child, item

TRAFFIC_KEYS = ("rps", "diurnal", "curve", "bursts", "mix", "teams", "input_tokens", "output_tokens", "max_tokens",
                "streaming", "prefix_sharing")
DIST_KEYS = ("mean", "spread")


@dataclass(frozen=True, slots=True)
class Tokens:
    mean: float
    spread: float = 0.0  # sigma of the logarithm

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.spread <= 0:
            return np.full(n, max(int(round(self.mean)), 1), dtype=np.int64)
        mu = math.log(self.mean) - self.spread ** 2 / 2  # so that the mean is `mean`
        return np.maximum(rng.lognormal(mu, self.spread, n).round(), 1).astype(np.int64)

    def quantiles(self, points: np.ndarray) -> np.ndarray:
        """The distribution's value at each probability in `points` (for the aggregated engine)."""
        if self.spread <= 0:
            return np.full(points.shape, max(self.mean, 1.0))
        from statistics import NormalDist

        mu = math.log(self.mean) - self.spread ** 2 / 2
        z = np.array([NormalDist().inv_cdf(p) for p in points.ravel()]).reshape(points.shape)
        return np.maximum(np.exp(mu + self.spread * z), 1.0)


@dataclass(frozen=True, slots=True)
class Prefixes:
    share: float
    count: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Traffic:
    rps: float
    curve: tuple[tuple[float, float], ...] = ()
    diurnal: tuple[float, float] | None = None  # (peak hour, trough share)
    bursts: tuple[tuple[float, float, float], ...] = ()  # (start s, duration s, factor)
    mix: tuple[tuple[str, float], ...] = ()  # (model group, share), shares summing to 1
    teams: tuple[tuple[str, float], ...] = (("default", 1.0),)
    input_tokens: Tokens = Tokens(500.0)
    output_tokens: Tokens = Tokens(150.0)
    max_tokens: int | None = None
    streaming: float = 0.5
    prefixes: Prefixes | None = None

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Requests per second at simulated seconds `t`."""
        hours = (t % 86400.0) / 3600.0
        if self.curve:
            xs = [h for h, _ in self.curve]
            ys = [f for _, f in self.curve]
            # repeat the first point a day later (and the last a day earlier) so the curve wraps around midnight
            factor = np.interp(hours, [xs[-1] - 24, *xs, xs[0] + 24], [ys[-1], *ys, ys[0]])
        elif self.diurnal is not None:
            peak, trough = self.diurnal
            factor = trough + (1 - trough) * (1 + np.cos(2 * np.pi * (hours - peak) / 24)) / 2
        else:
            factor = np.ones_like(t, dtype=float)
        for start, duration, times in self.bursts:
            factor = np.where((t >= start) & (t < start + duration), factor * times, factor)
        return self.rps * factor


def read_traffic(ctx: Context, value: Any, config, duration: float) -> Traffic:
    raw = fields.section(ctx, value, "traffic", required=True)
    if raw is None:
        return Traffic(1.0)
    path = "traffic"
    fields.check_keys(ctx, raw, path, TRAFFIC_KEYS)
    rps = fields.number(ctx, raw, path, "rps", above=0, required=True, default=1.0)
    groups = list(config.model_groups) if config is not None else []
    mix = _shares(ctx, raw.get("mix"), child(path, "mix"), groups)
    if not mix and groups:
        mix = ((groups[0], 1.0),)
    teams = _shares(ctx, raw.get("teams"), child(path, "teams"), None) or (("default", 1.0),)
    return Traffic(
        rps=rps, curve=_curve(ctx, raw.get("curve"), child(path, "curve")),
        diurnal=_diurnal(ctx, raw.get("diurnal"), child(path, "diurnal")),
        bursts=_bursts(ctx, raw.get("bursts"), child(path, "bursts"), duration), mix=mix, teams=teams,
        input_tokens=_tokens(ctx, raw, path, "input_tokens", 500.0),
        output_tokens=_tokens(ctx, raw, path, "output_tokens", 150.0),
        max_tokens=fields.number(ctx, raw, path, "max_tokens", integer=True, minimum=1),
        streaming=fields.number(ctx, raw, path, "streaming", minimum=0, maximum=1, default=0.5),
        prefixes=_prefixes(ctx, raw.get("prefix_sharing"), child(path, "prefix_sharing")))


def _shares(ctx: Context, value: Any, where: str, known: list[str] | None) -> tuple[tuple[str, float], ...]:
    raw = fields.section(ctx, value, where)
    if not raw:
        return ()
    out = []
    for name, share in raw.items():
        if known is not None and name not in known:
            ctx.add(child(where, name), "no model group has this name",
                    fields.did_you_mean(name, known) or f"model groups: {', '.join(known)}")
            continue
        number = fields.number(ctx, raw, where, name, minimum=0)
        if number is not None:
            out.append((str(name), number))
    total = sum(s for _, s in out)
    if out and total <= 0:
        ctx.add(where, "the shares add up to 0")
        return ()
    return tuple((name, s / total) for name, s in out)


def _tokens(ctx: Context, raw: Mapping, path: str, key: str, default: float) -> Tokens:
    value = raw.get(key)
    where = child(path, key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Tokens(float(value)) if value >= 1 else _bad(ctx, where, default)
    spec = fields.section(ctx, value, where)
    if spec is None:
        return Tokens(default)
    fields.check_keys(ctx, spec, where, DIST_KEYS)
    mean = fields.number(ctx, spec, where, "mean", minimum=1, required=True, default=default)
    return Tokens(mean, fields.number(ctx, spec, where, "spread", minimum=0, maximum=3, default=0.0))


def _bad(ctx: Context, where: str, default: float) -> Tokens:
    ctx.add(where, "must be at least 1 token")
    return Tokens(default)


def _curve(ctx: Context, value: Any, where: str) -> tuple[tuple[float, float], ...]:
    if value is None:
        return ()
    points = []
    if isinstance(value, list):
        for index, point in enumerate(value):
            if (isinstance(point, list) and len(point) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
                    and 0 <= point[0] < 24 and point[1] >= 0):
                points.append((float(point[0]), float(point[1])))
            else:
                ctx.add(item(where, index), f"expected [hour 0-24, share of the peak >= 0], got {point!r}")
    else:
        ctx.add(where, "expected a list of [hour, share of the peak] points", "e.g. [[0, 0.3], [15, 1.0]]")
    points.sort()
    return tuple(points)


def _diurnal(ctx: Context, value: Any, where: str) -> tuple[float, float] | None:
    raw = fields.section(ctx, value, where)
    if raw is None:
        return None
    fields.check_keys(ctx, raw, where, ("peak_hour", "trough"))
    return (fields.number(ctx, raw, where, "peak_hour", minimum=0, maximum=24, default=15.0),
            fields.number(ctx, raw, where, "trough", minimum=0, maximum=1, default=0.3))


def _bursts(ctx: Context, value: Any, where: str, duration: float) -> tuple[tuple[float, float, float], ...]:
    from .scenario import parse_time

    if value is None:
        return ()
    if not isinstance(value, list):
        ctx.add(where, "expected a list of {at, duration_s, factor}")
        return ()
    out = []
    for index, body in enumerate(value):
        path = item(where, index)
        raw = fields.section(ctx, body, path, required=True)
        if raw is None:
            continue
        fields.check_keys(ctx, raw, path, ("at", "duration_s", "factor"))
        at = parse_time(raw.get("at"))
        if at is None or not 0 <= at <= duration:
            ctx.add(child(path, "at"), f'expected seconds from the start or "HH:MM", got {raw.get("at")!r}')
            continue
        length = fields.number(ctx, raw, path, "duration_s", above=0, required=True)
        factor = fields.number(ctx, raw, path, "factor", minimum=0, required=True)
        if length is not None and factor is not None:
            out.append((at, length, factor))
    return tuple(out)


def _prefixes(ctx: Context, value: Any, where: str) -> Prefixes | None:
    raw = fields.section(ctx, value, where)
    if raw is None:
        return None
    fields.check_keys(ctx, raw, where, ("share", "prefixes", "tokens"))
    return Prefixes(fields.number(ctx, raw, where, "share", minimum=0, maximum=1, default=0.5),
                    fields.number(ctx, raw, where, "prefixes", integer=True, minimum=1, default=10),
                    fields.number(ctx, raw, where, "tokens", integer=True, minimum=1, default=1024))
