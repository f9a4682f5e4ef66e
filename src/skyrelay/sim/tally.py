"""What a run counted, per report interval (an hour on a day-long run): the one shape both engines fill and the
report reads. Latencies are kept as log-spaced histograms, so percentiles cost the same for a thousand requests
or a billion, and an engine that has flows (not requests) adds weighted points."""

from __future__ import annotations

import numpy as np

SMALLEST_S = 1e-3
LARGEST_S = 1e4
BINS = 1200  # ~1.3% wide: percentiles read to about half that
_LOG_LOW = np.log(SMALLEST_S)
_WIDTH = (np.log(LARGEST_S) - _LOG_LOW) / BINS


def interval_for(duration_s: float) -> float:
    """An hour for runs of four hours and more; a 24th of shorter runs (a scaled-down scenario)."""
    return 3600.0 if duration_s >= 4 * 3600 else max(duration_s / 24, 1.0)


def bin_of(seconds: np.ndarray) -> np.ndarray:
    index = np.floor((np.log(np.maximum(seconds, SMALLEST_S)) - _LOG_LOW) / _WIDTH)
    return np.clip(index, 0, BINS - 1).astype(np.int64)


def percentile_of(hist: np.ndarray, percentile: float) -> float | None:
    """Seconds at `percentile` of a histogram (geometric interpolation inside the bin); None when empty."""
    total = hist.sum()
    if total <= 0:
        return None
    cumulative = np.cumsum(hist)
    target = total * percentile / 100
    index = int(np.searchsorted(cumulative, target))
    index = min(index, BINS - 1)
    before = cumulative[index - 1] if index else 0.0
    inside = (target - before) / hist[index] if hist[index] else 0.0
    return float(np.exp(_LOG_LOW + (index + min(max(inside, 0.0), 1.0)) * _WIDTH))


class Tally:
    """Counts per report interval. D: deployments, B: intervals, T: teams."""

    def __init__(self, deployments: list[str], teams: list[str], duration_s: float):
        self.deployments = deployments
        self.teams = teams
        self.duration_s = duration_s
        self.interval_s = interval_for(duration_s)
        b = self.buckets = int(np.ceil(duration_s / self.interval_s - 1e-9))
        d, t = len(deployments), len(teams)
        self.arrivals = np.zeros(b)
        self.errors = np.zeros(b)  # requests no deployment answered
        self.throttled = np.zeros(b)  # ... of which the client was told 429
        self.served = np.zeros((d, b))
        self.spilled = np.zeros((d, b))  # served past the asking group's first tier
        self.failovers = np.zeros(b)  # served after a failed attempt
        self.input_tokens = np.zeros((d, b))
        self.output_tokens = np.zeros((d, b))
        self.cached_tokens = np.zeros((d, b))
        self.spilled_input = np.zeros((d, b))
        self.spilled_output = np.zeros((d, b))
        self.busy_s = np.zeros((d, b))  # slot-seconds of serving
        self.wait_s = np.zeros(d)  # seconds waited in the clouds' queues for a slot
        self.waited = np.zeros(d)  # requests that waited at all
        self.team_requests = np.zeros((t, d))
        self.team_input = np.zeros((t, d))
        self.team_output = np.zeros((t, d))
        self.latency = np.zeros((b, BINS))
        self.ttft = np.zeros((b, BINS))
        self.cloud_refusals: dict[str, int] = {}  # reason -> attempts a cloud refused
        self.breaches = 0  # attempts served by a vendor over its group's concentration cap
        self.engine = ""
        self.requests_simulated = 0.0

    def bucket_of(self, t: np.ndarray) -> np.ndarray:
        return np.minimum((t / self.interval_s).astype(np.int64), self.buckets - 1)

    def add_served(self, t, dep, latency, ttft, input_tokens, output_tokens, cached, spilled, team, busy,
                   failover, weight=None) -> None:
        """Vectors of served requests (or flows: `weight` requests each)."""
        b = self.bucket_of(np.asarray(t, dtype=float))
        dep = np.asarray(dep, dtype=np.int64)
        w = np.ones(len(b)) if weight is None else np.asarray(weight, dtype=float)
        shape = self.served.shape
        flat = dep * shape[1] + b
        size = shape[0] * shape[1]

        def add(target, values):
            target += np.bincount(flat, weights=values, minlength=size).reshape(shape)

        add(self.served, w)
        spilled = np.asarray(spilled, dtype=float) * w
        add(self.spilled, spilled)
        add(self.input_tokens, input_tokens * w)
        add(self.output_tokens, output_tokens * w)
        add(self.cached_tokens, cached * w)
        add(self.spilled_input, input_tokens * spilled)
        add(self.spilled_output, output_tokens * spilled)
        add(self.busy_s, busy * w)
        wait = np.maximum(np.asarray(latency) - np.asarray(busy), 0.0)
        self.wait_s += np.bincount(dep, weights=wait * w, minlength=shape[0])
        self.waited += np.bincount(dep, weights=(wait > 1e-9) * w, minlength=shape[0])
        self.failovers += np.bincount(b, weights=np.asarray(failover, dtype=float) * w, minlength=self.buckets)
        team = np.asarray(team, dtype=np.int64)
        tshape = self.team_requests.shape
        tflat = team * tshape[1] + dep
        tsize = tshape[0] * tshape[1]
        self.team_requests += np.bincount(tflat, weights=w, minlength=tsize).reshape(tshape)
        self.team_input += np.bincount(tflat, weights=input_tokens * w, minlength=tsize).reshape(tshape)
        self.team_output += np.bincount(tflat, weights=output_tokens * w, minlength=tsize).reshape(tshape)
        hsize = self.buckets * BINS
        self.latency += np.bincount(b * BINS + bin_of(np.asarray(latency)), weights=w,
                                    minlength=hsize).reshape(self.latency.shape)
        self.ttft += np.bincount(b * BINS + bin_of(np.asarray(ttft)), weights=w,
                                 minlength=hsize).reshape(self.ttft.shape)

    def add_arrivals(self, t, weight=None) -> None:
        b = self.bucket_of(np.asarray(t, dtype=float))
        self.arrivals += np.bincount(b, weights=weight, minlength=self.buckets)

    def add_errors(self, t, throttled, weight=None) -> None:
        b = self.bucket_of(np.asarray(t, dtype=float))
        w = np.ones(len(b)) if weight is None else np.asarray(weight, dtype=float)
        self.errors += np.bincount(b, weights=w, minlength=self.buckets)
        self.throttled += np.bincount(b, weights=np.asarray(throttled, dtype=float) * w, minlength=self.buckets)

    def refused(self, reason: str, count: float = 1) -> None:
        self.cloud_refusals[reason] = self.cloud_refusals.get(reason, 0) + count
