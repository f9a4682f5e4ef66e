"""Shared counters for limits and budgets: one process (`memory`) or many replicas on one Redis (`redis`).

    state = build_state(config.state)
    reservation, wait = await state.reserve([Item("k:bot:rpm", 1, 60, WINDOW), ...], time.time())
    state.settle(reservation, [1, ...])      # the real amounts, aligned with the items; refund = zeros

See base.py for the semantics both backends share.
"""

from __future__ import annotations

import os
from typing import Any

from .base import GAUGE, PERIOD, WINDOW, WINDOW_S, Item, Reservation
from .local import SOCKET_ENV, SocketState
from .memory import MemoryState

WORKERS_ENV = "SKYRELAY_WORKERS"  # how many workers share the supervisor's counters (the fallback's divisor)

__all__ = ["GAUGE", "PERIOD", "WINDOW", "WINDOW_S", "Item", "MemoryState", "Reservation", "build_state"]


def build_state(config: Any):
    """The backend the configuration's `state:` names (memory when absent)."""
    if config is None or config.backend == "memory":
        socket_path = os.environ.get(SOCKET_ENV)
        if socket_path:  # a worker of `serve --workers N`: the supervisor holds the counters
            return SocketState(socket_path, int(os.environ.get(WORKERS_ENV, "1")))
        return MemoryState()
    from .redis import RedisState  # imported only when used: the memory backend needs no Redis client

    return RedisState(config.url, config.prefix)
