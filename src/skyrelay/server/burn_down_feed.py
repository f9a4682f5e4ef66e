"""The commitments' burn-down for the dashboard (/admin/stats) and /metrics, from the ledger.

Both are read on the event loop, and the burn-down is a database query: so it is read in a worker thread at most
every REFRESH_S, and the last figures are served meanwhile (none before the first read ends: the dashboard then
shows the configured terms alone, as it does without a ledger)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

log = logging.getLogger("skyrelay.ledger")
REFRESH_S = 30.0


class BurnDownFeed:
    def __init__(self, read: Callable[[], list]):
        self._read = read  # -> [ledger.commitments.BurnDown]; blocking
        self.value: list | None = None
        self._read_at = float("-inf")
        self._pending = False

    def latest(self) -> list | None:
        """The last burn-down read; starts a new read when it is older than REFRESH_S (never waits for it)."""
        if not self._pending and time.monotonic() - self._read_at >= REFRESH_S:
            self._pending = True
            asyncio.get_running_loop().run_in_executor(None, self._read).add_done_callback(self._done)
        return self.value

    def _done(self, future: asyncio.Future) -> None:
        self._pending = False
        self._read_at = time.monotonic()
        if future.cancelled():
            return
        if future.exception() is not None:  # the database away: keep the last figures, the ledger's gauges say so
            log.debug("commitment burn-down not refreshed: %s", type(future.exception()).__name__)
            return
        self.value = future.result()

    def for_dashboard(self) -> dict | None:
        found = self.latest()
        if found is None:
            return None
        return {"source": "ledger", "commitments": [
            {"name": b.name, "kind": b.kind, "vendor": b.vendor, "start": b.start, "end": b.end,
             "amount_usd": b.amount, "consumed_usd": b.consumed, "elapsed": b.elapsed, "projected_usd": b.projected,
             "shortfall_usd": b.shortfall, "overrun_usd": b.overrun, "utilisation": b.utilisation}
            for b in found]}

    def gauges(self) -> list[tuple[str, str, str, tuple, dict[tuple, Any]]]:
        found = self.latest() or []
        labels = ("commitment", "kind", "vendor")

        def family(name: str, help_text: str, field: str) -> tuple:
            return (name, help_text, "gauge", labels,
                    {(b.name, b.kind, b.vendor): getattr(b, field) for b in found})

        if not found:
            return []
        return [
            family("skyrelay_commitment_consumed_usd", "Consumed to date (reserved: the hours paid so far).",
                   "consumed"),
            family("skyrelay_commitment_amount_usd", "The commitment's whole amount (reserved: every hour of the "
                   "term).", "amount"),
            family("skyrelay_commitment_elapsed_ratio", "Share of the commitment's term gone, 0 to 1.", "elapsed"),
            family("skyrelay_commitment_projected_usd", "Consumed at the end date at the last 7 days' rate.",
                   "projected"),
        ]
