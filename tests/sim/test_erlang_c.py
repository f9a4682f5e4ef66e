"""Theory: one deployment with c serving slots, Poisson arrivals and exponential service times is an M/M/c queue;
the event engine's mean wait and probability of waiting must match Erlang C."""

from __future__ import annotations

import math

import pytest

from skyrelay.sim.event import run_event_engine
from tests.sim.scenarios import deployment, scenario


def erlang_c(servers: int, offered: float) -> float:
    """P(wait) of M/M/c, from the textbook formula (not the simulator's code)."""
    top = offered ** servers / math.factorial(servers) * servers / (servers - offered)
    bottom = sum(offered ** k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


@pytest.mark.parametrize("servers, rate", [(4, 3.0), (10, 7.0)])
def test_mm_c_wait_matches_erlang_c(servers, rate):
    service_s = 1.0
    requests = 150_000
    s = scenario([deployment("only")],
                 {"only": {"ttft_ms": service_s * 1000, "tokens_per_second": 1e9, "distribution": "exponential",
                           "concurrency": servers, "queue": 100_000}},
                 {"rps": rate, "output_tokens": 1, "input_tokens": 10}, duration_s=requests / rate, seed=7)
    tally = run_event_engine(s)
    served = tally.served.sum()
    assert tally.errors.sum() == 0 and served > requests * 0.97
    p_wait = erlang_c(servers, rate * service_s)
    mean_wait = p_wait * service_s / (servers - rate * service_s)
    assert tally.waited[0] / served == pytest.approx(p_wait, rel=0.04)
    assert tally.wait_s[0] / served == pytest.approx(mean_wait, rel=0.06)
    assert tally.busy_s.sum() / served == pytest.approx(service_s, rel=0.02)
