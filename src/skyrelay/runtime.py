"""Process-level concerns shared by every long-running command (serve, demo, emulate): GC tuning, and the hooks
run once at a clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from typing import Awaitable, Callable

# Run by `skyrelay serve` after SIGTERM (or Ctrl-C), once the server drained: flushes and closes that must not be
# lost (a ledger's last batch). Each is a callable returning None or an awaitable; one failing does not stop the
# others. Append to it at start-up.
on_shutdown: list[Callable[[], Awaitable[None] | None]] = []


async def run_shutdown_hooks() -> None:
    for hook in list(on_shutdown):
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 - the next hook's flush matters as much
            logging.getLogger("skyrelay").exception("shutdown hook %r failed", hook)


def tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect less often: it cut p99 latency 2-3x in
    measurements (docs/performance.md), since every request allocates many short-lived objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


SHUTDOWN_WAIT_S = 3.0  # at shutdown, for each background task's last work (a write to Redis) before it is cancelled


async def finish_within(tasks, what: str, logger: logging.Logger, timeout: float = SHUTDOWN_WAIT_S) -> None:
    """Wait up to `timeout` s for background `tasks` (a shutdown's last writes to Redis); cancel those still
    running, logged with where each waits. A shutdown must not hang on a connection that never answers, and what
    such a task would have written is lost either way."""
    tasks = [task for task in tasks if not task.done()]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if not pending:
        return
    logger.warning("shutdown: %d %s still running after %g s, cancelled (waiting in %s)", len(pending), what,
                   timeout, "; ".join(sorted({awaiting(task) for task in pending})))
    for task in pending:
        task.cancel()
    await asyncio.wait(pending, timeout=1.0)


async def stop_loop(task, what: str, logger: logging.Logger) -> None:
    """Cancel a background loop and wait for it as finish_within does. The loop must also end on a closing flag of
    its owner: on Python 3.11 redis-py's asyncio.wait_for can swallow a cancel that lands as a command is sent, and
    the loop then goes on (a shutdown waited for it forever)."""
    if task is not None:
        task.cancel()
        await finish_within([task], what, logger)


def awaiting(task) -> str:
    """Where a suspended task waits: its chain of awaits, outermost first (function:line each)."""
    parts = []
    coro = task.get_coro()
    while coro is not None and len(parts) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            parts.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(parts) or "?"
