"""Which deployment serves a request: pure policy over config and a RoutingView (health, in-flight counts, quota
headroom), a clock and a random source.

Nothing here does I/O or reads the time: callers pass `now` and `rng`, so the simulator and the tests drive the
very same code as production.
"""

from .health import BreakerPolicy, HealthBook
from .planner import Plan, plan
from .quotas import CONCURRENCY, QUOTA, QuotaBook
from .strategies import STRATEGIES, least_outstanding_order, weighted_order
from .view import RoutingView

__all__ = [
    "BreakerPolicy",
    "CONCURRENCY",
    "QUOTA",
    "QuotaBook",
    "RoutingView",
    "HealthBook",
    "Plan",
    "plan",
    "STRATEGIES",
    "least_outstanding_order",
    "weighted_order",
]
