"""The `metrics:`, `logging:` and `telemetry:` sections: what /metrics exposes to whom, what the gateway writes
down, and where its traces go."""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping

from . import fields
from .fields import Context, child
from .deployments import read_headers
from .model import LoggingConfig, MetricsConfig, OtlpConfig

METRICS_KEYS = ("enabled", "public")
LOGGING_KEYS = ("access", "file", "level", "format")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TELEMETRY_KEYS = ("otlp",)
OTLP_KEYS = ("endpoint", "headers", "sample_ratio")


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


def read_telemetry(ctx: Context, value: Any) -> OtlpConfig | None:
    raw = fields.section(ctx, value, "telemetry")
    if raw is None:
        return None
    fields.check_keys(ctx, raw, "telemetry", TELEMETRY_KEYS)
    where = "telemetry.otlp"
    otlp = fields.section(ctx, raw.get("otlp"), where)
    if otlp is None:
        return None
    fields.check_keys(ctx, otlp, where, OTLP_KEYS)
    endpoint = fields.text(ctx, otlp, where, "endpoint", required=True,
                           hint="the collector's traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        ctx.add(child(where, "endpoint"),
                f"expected an http:// or https:// URL, got {ctx.show(child(where, 'endpoint'), endpoint)}")
    if not _installed("opentelemetry.sdk") or not _installed("opentelemetry.exporter.otlp.proto.http"):
        ctx.add(where, "tracing needs the OpenTelemetry SDK, which is not installed",
                "pip install 'skyrelay[otlp]'")
    return OtlpConfig(
        endpoint=endpoint or "",
        headers=read_headers(ctx, otlp, where),
        sample_ratio=fields.number(ctx, otlp, where, "sample_ratio", minimum=0, maximum=1, default=1.0),
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


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
