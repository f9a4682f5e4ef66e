"""`/metrics` and `/admin/stats` for the whole gateway under `serve --workers N`: whichever worker takes the
request asks the others.

Each worker listens on a unix socket of its own in the supervisor's private directory (PEERS_ENV). A connection
sends one line naming what it wants (METRICS: the worker's own exposition; STATS: its /admin/stats part, JSON),
and the worker answers with it, then closes the connection. The worker that was asked reads the others' at the
same time (FETCH_TIMEOUT_S each) and merges them with its own (merge.py, stats_merge.py). A worker that does not
answer (restarting, say) is left out, and the answer says how many were counted (`skyrelay_workers_reporting`,
`workers.reporting`). Nothing here is on a request's path: it runs when someone scrapes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable

from .merge import merge

log = logging.getLogger("skyrelay.telemetry")
PEERS_ENV = "SKYRELAY_METRICS_DIR"  # set by the supervisor for its workers: where their sockets are
FETCH_TIMEOUT_S = 2.0
METRICS, STATS = "metrics", "stats"  # what a worker may be asked for


def socket_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"worker-{index}.sock")


class Peers:
    def __init__(self, directory: str, index: int, count: int):
        self.directory, self.index, self.count = directory, index, count
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    def from_env(cls, index: int, count: int) -> "Peers | None":
        directory = os.environ.get(PEERS_ENV)
        return cls(directory, index, count) if directory and count > 1 else None

    async def start(self, answers: dict[str, Callable[[], bytes]]) -> None:
        """Answer the other workers: `answers` renders what each may ask for (METRICS, STATS) from this worker."""
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            asked = "(nothing)"
            try:
                async with asyncio.timeout(FETCH_TIMEOUT_S):
                    asked = (await reader.readline()).strip().decode()
                render = answers.get(asked)
                if render is not None:  # not offered here (metrics disabled): an empty answer
                    writer.write(render())
                    await writer.drain()
            except Exception:  # noqa: BLE001 - a failed rendering leaves this worker out of one answer, no more
                log.exception("telemetry: could not answer another worker's request for %r", asked)
            finally:
                writer.close()

        # A socket left by this worker's dead predecessor is replaced (asyncio removes a stale socket file).
        self._server = await asyncio.start_unix_server(answer, path=socket_path(self.directory, self.index))

    async def ask(self, what: str) -> dict[int, bytes]:
        """Every other worker's answer to `what` that came within FETCH_TIMEOUT_S, by worker index."""
        others = [index for index in range(self.count) if index != self.index]
        answers = await asyncio.gather(*(self._fetch(index, what) for index in others))
        return {index: body for index, body in zip(others, answers) if body is not None}

    async def gather(self, own: bytes) -> bytes:
        """This worker's exposition merged with every other worker's that answers."""
        parts = sorted([(self.index, own), *(await self.ask(METRICS)).items()])
        body = merge([(str(index), text) for index, text in parts])
        return body + (
            "# HELP skyrelay_workers Worker processes the gateway runs (serve --workers).\n"
            f"# TYPE skyrelay_workers gauge\nskyrelay_workers {self.count}\n"
            "# HELP skyrelay_workers_reporting Workers whose counters this answer adds up (the others did not "
            f"answer in time).\n# TYPE skyrelay_workers_reporting gauge\nskyrelay_workers_reporting {len(parts)}\n"
        ).encode()

    async def _fetch(self, index: int, what: str) -> bytes | None:
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(socket_path(self.directory, index))
                try:
                    writer.write(what.encode() + b"\n")
                    return await reader.read() or None  # empty: its rendering failed (it logged why)
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            log.warning("telemetry: worker %d did not answer for %s (%s): left out", index, what,
                        type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
