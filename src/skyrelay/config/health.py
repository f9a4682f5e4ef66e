"""The gateway-wide `health:` section (breaker and ejection rules) and a deployment's `health_check:`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..routing.health import BreakerPolicy, ErrorRate
from . import fields
from .fields import Context, child
from .model import HealthCheck

HEALTH_KEYS = ("failure_threshold", "cooldown_s", "max_cooldown_s", "repeat_memory_s", "error_rate")
ERROR_RATE_KEYS = ("threshold", "window_s", "min_requests")
HEALTH_CHECK_KEYS = ("interval_s", "timeout_s")


def read_health(ctx: Context, value: Any) -> BreakerPolicy:
    raw = fields.section(ctx, value, "health")
    default = BreakerPolicy()
    if raw is None:
        return default
    fields.check_keys(ctx, raw, "health", HEALTH_KEYS)
    cooldown = fields.number(ctx, raw, "health", "cooldown_s", above=0, default=default.cooldown)
    max_cooldown = fields.number(ctx, raw, "health", "max_cooldown_s", above=0,
                                 default=max(default.max_cooldown, cooldown))
    if max_cooldown < cooldown:
        ctx.add("health.max_cooldown_s", f"is shorter than cooldown_s ({max_cooldown:g} < {cooldown:g})",
                "raise max_cooldown_s or lower cooldown_s")
        max_cooldown = cooldown
    return BreakerPolicy(
        failure_threshold=fields.number(ctx, raw, "health", "failure_threshold", integer=True, minimum=1,
                                        default=default.failure_threshold),
        cooldown=cooldown,
        max_cooldown=max_cooldown,
        repeat_memory=fields.number(ctx, raw, "health", "repeat_memory_s", minimum=0,
                                    default=default.repeat_memory),
        error_rate=_error_rate(ctx, raw),
    )


def _error_rate(ctx: Context, raw: Mapping) -> ErrorRate | None:
    where = "health.error_rate"
    value = raw.get("error_rate")
    if value is False:  # `error_rate: off`: only consecutive failures open the breaker
        return None
    section = fields.section(ctx, value, where)
    default = ErrorRate()
    if section is None:
        return default
    fields.check_keys(ctx, section, where, ERROR_RATE_KEYS)
    return ErrorRate(
        threshold=fields.number(ctx, section, where, "threshold", above=0, maximum=1, default=default.threshold),
        window_s=fields.number(ctx, section, where, "window_s", above=0, default=default.window_s),
        min_requests=fields.number(ctx, section, where, "min_requests", integer=True, minimum=1,
                                   default=default.min_requests),
    )


def read_health_check(ctx: Context, raw: Mapping, path: str) -> HealthCheck | None:
    where = child(path, "health_check")
    section = fields.section(ctx, raw.get("health_check"), where)
    if section is None:
        return None
    fields.check_keys(ctx, section, where, HEALTH_CHECK_KEYS)
    interval = fields.number(ctx, section, where, "interval_s", above=0, default=10.0)
    timeout = fields.number(ctx, section, where, "timeout_s", above=0, default=min(5.0, interval))
    if timeout > interval:
        ctx.add(child(where, "timeout_s"), f"is longer than interval_s ({timeout:g} > {interval:g})",
                "a check must end before the next one is due")
    return HealthCheck(interval_s=interval, timeout_s=timeout)
