"""Which deployment serves a request: pure policy over config, health, in-flight counts, a clock and a random source.

Nothing here does I/O or reads the time: callers pass `now` and `rng`, so the simulator and the tests drive the
very same code as production.
"""

from .health import BreakerPolicy, HealthBook
from .planner import Plan, plan
from .strategies import STRATEGIES, least_outstanding_order, weighted_order

__all__ = [
    "BreakerPolicy",
    "HealthBook",
    "Plan",
    "plan",
    "STRATEGIES",
    "least_outstanding_order",
    "weighted_order",
]
