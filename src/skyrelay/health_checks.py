"""Active health checks: while a deployment with `health_check:` is ejected, probe it off the request path.

One task per such deployment wakes every `interval_s`; a healthy deployment costs it one dict lookup and no
request. While the breaker is open or half-open the task sends the provider's `health_probe()` (by default a
one-token chat); a success closes the breaker at once, so the next customer request is not the probe. A failed
check while the breaker is open changes nothing (the cool-down runs on); in half-open the check takes the one
probe slot (customers wait for it, as they would for a customer probe), and its failure reopens the breaker like
a failed probe. A mere cool-down (Retry-After, throttling) is never probed: the upstream asked us to wait.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from . import errors
from .routing.health import HALF_OPEN

log = logging.getLogger("skyrelay.health_checks")


class HealthChecker:
    __slots__ = ("_dispatcher", "_checks", "_tasks")

    def __init__(self, dispatcher: Any, deployments: Iterable[Any]):
        self._dispatcher = dispatcher
        self._checks = [(d.name, d.health_check) for d in deployments if d.health_check is not None]
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(name, check), name=f"health-check {name}")
                       for name, check in self._checks]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, name: str, check: Any) -> None:
        while True:
            await asyncio.sleep(check.interval_s)
            await self.check(name, check.timeout_s)

    async def check(self, name: str, timeout: float) -> bool | None:
        """Probe `name` if it is ejected: True if it answered (breaker closed), False if not, None if not probed."""
        dispatcher = self._dispatcher
        health = dispatcher.health
        if not health.is_ejected(name):
            return None
        now = dispatcher.clock()
        if health.state(name, now) == HALF_OPEN:
            if health.unavailable_reason(name, now) is not None:
                return None  # a customer request is the probe already
            health.on_attempt(name, now)
        try:
            await asyncio.wait_for(dispatcher.providers[name].health_probe(), timeout)
        except errors.UpstreamError as exc:
            dispatcher._record_failure(name, exc)  # the dispatcher's own reading of what a failure means
            return False
        except asyncio.TimeoutError:
            health.on_failure(name, dispatcher.clock())
            return False
        except errors.GatewayError as exc:  # e.g. a deployment whose cloud serves no chat: no verdict
            health.on_abandoned(name, dispatcher.clock())
            log.warning("health check of deployment %s could not run: %s", name, exc.message)
            return False
        except Exception:  # a provider bug must not end the checks
            log.exception("health check of deployment %s failed unexpectedly", name)
            health.on_failure(name, dispatcher.clock())
            return False
        health.on_probe_success(name, dispatcher.clock())
        return True
