"""The embedded backend for `serve --workers N`: one MemoryState in the supervisor, shared by its workers over a
Unix socket, so key and team limits and budgets stay exact across workers without Redis.

Why a state process rather than shared memory: a reserve is all-or-nothing over several sliding windows, which
needs one owner of the counters (a lock over shared memory would serialise workers on it anyway, and a crashed
worker holding it would stall the rest). One round trip on a local socket costs each worker a few microseconds of
CPU, about what a Redis script call costs, and needs nothing installed. The wire: one orjson array per line.

    worker -> supervisor   [id, "r", now, [[name, limit, kind, reset_at, amount], ...]]   reserve
                           [0, "s", token, [amount, ...], now]                             settle (no answer)
                           [id, "t", name, kind, now] | [id, "f+"|"f-", name] | [id, "F"]  total, flags
    supervisor -> worker   [id, result...]

When the supervisor cannot be reached (it is restarting), a worker falls back to local counters at its 1/N share of
each limit, as a Redis replica does, and says so in `status()`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os

import orjson

from .base import Item, Reservation
from .memory import MemoryState

log = logging.getLogger("skyrelay.state")
SOCKET_ENV = "SKYRELAY_STATE_SOCKET"  # set by the supervisor for its workers
RETRY_S = 1.0


class StateServer:
    """Runs in the supervisor: executes every worker's operations on one MemoryState, in arrival order."""

    def __init__(self, path: str):
        self.path = path
        self.state = MemoryState()
        self._held: dict[int, Reservation] = {}  # reservation tokens handed to workers, until settled
        self._tokens = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=1 << 20)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self._execute(orjson.loads(line))
                if answer is not None:
                    writer.write(orjson.dumps(answer) + b"\n")
        except (ConnectionError, asyncio.IncompleteReadError, orjson.JSONDecodeError):
            pass
        finally:
            writer.close()

    async def _execute(self, message: list) -> list | None:
        op, state = message[1], self.state
        if op == "r":
            now, rows = message[2], message[3]
            items = [Item(name, limit, kind, reset_at) for name, limit, kind, reset_at, _ in rows]
            reservation, wait, refused = state.reserve_now(items, [row[4] for row in rows], now)
            if reservation is None:
                return [message[0], 0, wait, refused]
            token = next(self._tokens)
            self._held[token] = reservation
            return [message[0], token, 0.0, -1]
        if op == "s":
            reservation = self._held.pop(message[2], None)
            if reservation is not None:
                state.settle(reservation, message[3], message[4])
            return None
        if op == "t":
            return [message[0], await state.total(message[2], message[3], message[4])]
        if op == "f+":
            await state.set_flag(message[2])
            return [message[0], 1]
        if op == "f-":
            await state.clear_flag(message[2])
            return [message[0], 1]
        if op == "F":
            return [message[0], sorted(await state.flags())]
        return [message[0], None]


class SocketState:
    """Runs in each worker: the state interface (see base.py) over the supervisor's socket."""

    backend = "memory"

    def __init__(self, path: str, workers: int):
        self.path = path
        self.workers = max(1, workers)
        self.shared = False  # until connected
        self._local = MemoryState()  # the fallback while the supervisor is unreachable
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task | None = None

    # --- the request path --------------------------------------------------------------------------------------

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        if self.shared:
            rows = [[i.name, i.limit, i.kind, i.reset_at, a] for i, a in zip(items, amounts)]
            try:
                token, wait, refused = await self._call("r", now, rows)
            except ConnectionError:
                pass
            else:
                if token:
                    return Reservation(items, amounts, token), 0.0, -1
                return None, wait, refused
        return self._reserve_locally(items, amounts, now)

    def _reserve_locally(self, items, amounts, now):
        share = [Item(i.name, i.limit / self.workers, i.kind, i.reset_at) for i in items]
        reservation, wait, refused = self._local.reserve_now(share, amounts, now)
        if reservation is not None:
            reservation.items = items
            reservation.local = True
        return reservation, wait, refused

    def settle(self, reservation: Reservation, amounts: list[float], now: float) -> None:
        if reservation.settled:
            return
        if reservation.local:
            self._local.settle(reservation, amounts, now)
            return
        reservation.settled = True
        if self._writer is not None:  # a supervisor gone meanwhile took its counters with it: nothing to settle
            self._writer.write(orjson.dumps([0, "s", reservation.marks, list(amounts), now]) + b"\n")

    # --- reads and flags ---------------------------------------------------------------------------------------

    async def total(self, name: str, kind: str, now: float) -> float:
        return (await self._call("t", name, kind, now))[0] if self.shared else await self._local.total(name, kind, now)

    async def set_flag(self, name: str) -> None:
        await self._call("f+", name) if self.shared else await self._local.set_flag(name)

    async def clear_flag(self, name: str) -> None:
        await self._call("f-", name) if self.shared else await self._local.clear_flag(name)

    async def flags(self) -> set[str]:
        return set((await self._call("F"))[0]) if self.shared else await self._local.flags()

    # --- the connection ----------------------------------------------------------------------------------------

    async def _call(self, op: str, *args) -> list:
        if self._writer is None:
            raise ConnectionError("state process unreachable")
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self._writer.write(orjson.dumps([ident, op, *args]) + b"\n")
        return await future

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_connected())

    async def connect(self) -> bool:
        try:
            reader, self._writer = await asyncio.open_unix_connection(self.path, limit=1 << 20)
        except OSError:
            return False
        self.shared = True
        self._reader = reader
        return True

    async def _keep_connected(self) -> None:
        while True:
            if self._writer is None and not await self.connect():  # Gateway.start connected it the first time
                await asyncio.sleep(RETRY_S)
                continue
            await self._read_answers()
            self._lost()

    async def _read_answers(self) -> None:
        try:
            while line := await self._reader.readline():
                message = orjson.loads(line)
                future = self._waiting.pop(message[0], None)
                if future is not None and not future.done():
                    future.set_result(message[1:])
        except (ConnectionError, orjson.JSONDecodeError):
            pass

    def _lost(self) -> None:
        if self.shared:
            log.warning("state process unreachable: serving on local limits, this worker's 1/%d share of each",
                        self.workers)
        self.shared = False
        self._writer = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("state process went away"))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._writer is not None:
            self._writer.close()

    def status(self) -> dict:
        return {"backend": "memory", "shared": self.shared, "workers": self.workers}
