"""The `metrics:` and `logging:` sections: what /metrics exposes to whom, and what the gateway writes down."""

from __future__ import annotations

from typing import Any, Mapping

from . import fields
from .fields import Context, child
from .model import LoggingConfig, MetricsConfig

METRICS_KEYS = ("enabled", "public")
LOGGING_KEYS = ("access", "file", "level", "format")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def read_metrics(ctx: Context, value: Any) -> MetricsConfig:
    raw = fields.section(ctx, value, "metrics")
    if raw is None:
        return MetricsConfig()
    fields.check_keys(ctx, raw, "metrics", METRICS_KEYS)
    return MetricsConfig(enabled=flag(ctx, raw, "metrics", "enabled", True),
                         public=flag(ctx, raw, "metrics", "public", False))


def read_logging(ctx: Context, value: Any) -> LoggingConfig:
    raw = fields.section(ctx, value, "logging")
    if raw is None:
        return LoggingConfig()
    fields.check_keys(ctx, raw, "logging", LOGGING_KEYS)
    default = LoggingConfig()
    return LoggingConfig(
        access=flag(ctx, raw, "logging", "access", default.access),
        file=fields.text(ctx, raw, "logging", "file"),
        level=fields.choice(ctx, raw, "logging", "level", LOG_LEVELS, default=default.level),
        format=fields.choice(ctx, raw, "logging", "format", LOG_FORMATS, default=default.format),
    )


def flag(ctx: Context, mapping: Mapping, path: str, key: str, default: bool) -> bool:
    """A YAML boolean (true/false, yes/no, on/off); absent or null is the default."""
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        where = child(path, key)
        ctx.add(where, f"expected true or false, got {ctx.show(where, value)}")
        return default
    return value
