"""Configuration reload without a restart: SIGHUP and `POST /admin/reload`.

The file is read and validated again; a file with problems changes nothing (its problems are logged, and the admin
answer lists them). A valid one replaces what routing serves from, between two requests: the model groups (their
deployments, strategies and policies), the `routing` defaults and the `health` policy. A deployment whose
settings are unchanged keeps its provider and connection pool; a changed one gets a new provider; a removed one's
pool is closed (a request in flight on it finishes first). What routing learnt of each deployment (breaker state,
latencies, quota windows, vendor shares) is kept by name. A request in flight finishes with the plan it made,
skipping deployments removed meanwhile.

The other sections are read once at start (the listening socket, keys and their counters, exporters): a change to
one is logged as needing a restart, and the running values stay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from typing import Any

from .. import errors
from ..config import ConfigError, load_config
from ..health_checks import HealthChecker
from ..providers import build_provider

log = logging.getLogger("skyrelay.reload")

RELOADED = ("model_groups", "routing", "health")
AT_START = ("server", "state", "teams", "keys", "metrics", "logging", "otlp", "database", "commitments", "ledger")
_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # per gateway: reloads apply one at a time


class ReloadRefused(errors.InvalidRequest):
    """The file has problems: the running configuration is kept. `problems` lists them, one line each."""

    def __init__(self, problems: list[str], source: str):
        super().__init__(f"the configuration in {source} has {len(problems)} problem(s) and was not applied; the "
                         "running configuration is kept: " + "; ".join(problems), code="invalid_configuration")
        self.problems = problems


async def reload_file(gateway: Any, path: str) -> dict[str, list[str]]:
    """Reload `path` into the running gateway; what changed. Raises ReloadRefused when the file has problems."""
    lock = _locks.get(gateway)
    if lock is None:
        lock = _locks[gateway] = asyncio.Lock()
    async with lock:  # two SIGHUPs in a row apply one after the other
        try:
            config = load_config(path)
        except ConfigError as exc:
            log.error("configuration reload refused, the running configuration is kept:\n%s", exc)
            raise ReloadRefused([str(p) for p in exc.problems], path) from None
        if gateway.adapt_config is not None:
            config = gateway.adapt_config(config)
        summary = await apply(gateway, config)
    log.warning("configuration reloaded from %s: %s", path,
                "; ".join(f"{key}: {', '.join(names)}" for key, names in summary.items() if names) or "no change")
    for section in summary["restart_needed"]:
        log.warning("configuration reload: the %s section changed, and applies only at the next start", section)
    return summary


async def apply(gateway: Any, config: Any) -> dict[str, list[str]]:
    """Swap the sections reloads change into the running gateway; keep the others as they run."""
    old = gateway.config
    restart = [name for name in AT_START if getattr(config, name) != getattr(old, name)]
    config = dataclasses.replace(config, **{name: getattr(old, name) for name in AT_START})
    dispatcher = gateway.dispatcher
    previous = dispatcher.providers
    providers, added, changed = {}, [], []
    for deployment in config.deployments():
        current = previous.get(deployment.name)
        if current is not None and current.deployment == deployment:
            providers[deployment.name] = current
            continue
        providers[deployment.name] = build_provider(deployment)
        (changed if current is not None else added).append(deployment.name)
        if gateway.telemetry.tracer is not None:
            providers[deployment.name].traced = True
    dispatcher.reconfigure(config.model_groups, providers)
    dispatcher.health.policy = config.health
    gateway.config = config
    gateway.governor.reprice(config)
    if gateway.ledger is not None:  # the records of the new deployments, at their prices
        gateway.ledger.reprice(config)
    removed = [name for name in previous if name not in providers]
    gateway.telemetry.reconfigure(config, gateway.config_path or "admin", added, removed)
    await gateway.health_checker.close()
    gateway.health_checker = HealthChecker(dispatcher, config.deployments())
    gateway.health_checker.start()
    for name, provider in previous.items():  # in-flight exchanges finish; their connections close after
        if providers.get(name) is not provider:
            await provider.aclose()
    return {"added": added, "changed": changed, "removed": removed, "restart_needed": restart}

