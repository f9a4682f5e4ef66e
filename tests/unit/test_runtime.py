"""The shutdown hooks `skyrelay serve` runs once it drained: each runs, in order, sync or async, and one failing
does not keep the next (a ledger's flush) from running."""

from __future__ import annotations

import logging

from skyrelay import runtime


async def test_every_hook_runs_in_order_even_after_one_fails(monkeypatch, caplog):
    ran = []

    async def flush():
        ran.append("flush")

    def broken():
        ran.append("broken")
        raise RuntimeError("disk full")

    monkeypatch.setattr(runtime, "on_shutdown", [lambda: ran.append("sync"), broken, flush])
    with caplog.at_level(logging.ERROR):
        await runtime.run_shutdown_hooks()
    assert ran == ["sync", "broken", "flush"]
    assert "shutdown hook" in caplog.text and "disk full" in caplog.text
