"""The `ledger:` section: where the write-ahead spool lives and how often it is made durable."""

from __future__ import annotations

from typing import Any

from . import fields
from .fields import Context
from .telemetry import flag
from .model import LedgerConfig

LEDGER_KEYS = ("enabled", "spool_dir", "fsync_interval_ms", "max_spool_bytes", "segment_bytes")
_DEFAULT = LedgerConfig()


def read_ledger(ctx: Context, value: Any) -> LedgerConfig:
    raw = fields.section(ctx, value, "ledger")
    if raw is None:
        return _DEFAULT
    fields.check_keys(ctx, raw, "ledger", LEDGER_KEYS)
    return LedgerConfig(
        enabled=flag(ctx, raw, "ledger", "enabled", _DEFAULT.enabled),
        spool_dir=fields.text(ctx, raw, "ledger", "spool_dir", default=_DEFAULT.spool_dir),
        fsync_interval_ms=fields.number(ctx, raw, "ledger", "fsync_interval_ms", integer=True, minimum=1,
                                        maximum=60_000, default=_DEFAULT.fsync_interval_ms),
        max_spool_bytes=fields.number(ctx, raw, "ledger", "max_spool_bytes", integer=True, minimum=1 << 20,
                                      default=_DEFAULT.max_spool_bytes),
        segment_bytes=fields.number(ctx, raw, "ledger", "segment_bytes", integer=True, minimum=64 << 10,
                                    maximum=1 << 30, default=_DEFAULT.segment_bytes),
    )
