"""`/metrics` for the whole gateway under `serve --workers N`: whichever worker takes the scrape asks the others.

Each worker listens on a unix socket of its own in the supervisor's private directory (PEERS_ENV) and answers a
connection with its own exposition, then closes it. The worker that was scraped reads the others' at the same
time (FETCH_TIMEOUT_S each) and merges them with its own (merge.py). A worker that does not answer (restarting,
say) is left out, and `skyrelay_workers_reporting` says how many were counted. Nothing here is on a request's
path: it runs when someone scrapes.
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


def socket_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"metrics-{index}.sock")


class Peers:
    def __init__(self, directory: str, index: int, count: int):
        self.directory, self.index, self.count = directory, index, count
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    def from_env(cls, index: int, count: int) -> "Peers | None":
        directory = os.environ.get(PEERS_ENV)
        return cls(directory, index, count) if directory and count > 1 else None

    async def start(self, render: Callable[[], bytes]) -> None:
        """Answer the other workers with `render()`, this worker's own exposition."""
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(render())
                await writer.drain()
            except Exception:  # noqa: BLE001 - a failed rendering leaves this worker out of one scrape, no more
                log.exception("telemetry: could not answer another worker's scrape")
            finally:
                writer.close()

        # A socket left by this worker's dead predecessor is replaced (asyncio removes a stale socket file).
        self._server = await asyncio.start_unix_server(answer, path=socket_path(self.directory, self.index))

    async def gather(self, own: bytes) -> bytes:
        """This worker's exposition merged with every other worker's that answers."""
        others = [index for index in range(self.count) if index != self.index]
        answers = await asyncio.gather(*(self._fetch(index) for index in others))
        parts = sorted([(self.index, own)] + [(i, body) for i, body in zip(others, answers) if body is not None])
        body = merge([(str(index), text) for index, text in parts])
        return body + (
            "# HELP skyrelay_workers Worker processes the gateway runs (serve --workers).\n"
            f"# TYPE skyrelay_workers gauge\nskyrelay_workers {self.count}\n"
            "# HELP skyrelay_workers_reporting Workers whose counters this answer adds up (the others did not "
            f"answer in time).\n# TYPE skyrelay_workers_reporting gauge\nskyrelay_workers_reporting {len(parts)}\n"
        ).encode()

    async def _fetch(self, index: int) -> bytes | None:
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(socket_path(self.directory, index))
                try:
                    return await reader.read() or None  # empty: its rendering failed (it logged why)
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            log.warning("telemetry: worker %d did not answer for /metrics (%s): left out", index,
                        type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
