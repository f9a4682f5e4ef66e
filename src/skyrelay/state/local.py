"""The embedded backend for `serve --workers N`: one MemoryState in the supervisor, shared by its workers over a
Unix socket, so key and team limits and budgets stay exact across workers without Redis.

Why a state process rather than shared memory: a reserve is all-or-nothing over several sliding windows, which
needs one owner of the counters (a lock over shared memory would serialise workers on it anyway, and a crashed
worker holding it would stall the rest). Exact, not approximate: every reserve is decided by the one owner, in
arrival order, so no limit is ever passed (no overshoot); the price is a round trip on the request path.

What the round trip costs (bench/governance.py --local, 6 counters; docs/performance.md): the socket is an
asyncio.Protocol on both ends (no stream reader, no task per message); a counter travels as a small integer
defined once per connection (its name, limit and kind are sent the first time only, and the supervisor keeps
the Item, so its counter lookup is cached there too); and every message one event-loop turn produces goes out in
one write, its answers back in one: concurrent requests share the syscalls, and a settle (which needs no answer)
rides along with the next reserve. The wire: one orjson array per line.

    worker -> supervisor   ["d", id, name, limit, kind, reset_at]        define counter `id` on this connection
                           ["r", call, now, [id, ...], [amount, ...]]     reserve
                           ["s", token, [amount, ...] | null, now]        settle (no answer; null: refund all)
                           ["t", call, name, kind, now] | ["f+"|"f-", call, name] | ["F", call]   total, flags
                           ["B", call] | ["B", call, name] | ["b", name, spent, expiry]
                                        the counters' birth (or one budget counter's); a budget's seed (no answer)
    supervisor -> worker   [call, result...]

A settle follows its reserve on the same connection, so the supervisor always sees them in order. A worker that
goes away has its unsettled reservations settled by the supervisor (in-flight gauges back to zero, the rest as
reserved). When the supervisor cannot be reached (it is restarting), a worker falls back to local counters at
its 1/N share of each limit, as a Redis replica does, and says so in `status()`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time

import orjson

from .base import GAUGE, Item, Reservation
from .memory import MemoryState

log = logging.getLogger("skyrelay.state")
SOCKET_ENV = "SKYRELAY_STATE_SOCKET"  # set by the supervisor for its workers
RETRY_S = 1.0
_LINE = orjson.OPT_APPEND_NEWLINE


def _lines(pending: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines in what arrived (after what an earlier read left incomplete), and the new remainder."""
    if pending:
        data = pending + data
    lines = data.split(b"\n")
    return lines, lines.pop()


class StateServer:
    """Runs in the supervisor: executes every worker's operations on one MemoryState, in arrival order."""

    def __init__(self, path: str):
        self.path = path
        self.state = MemoryState()
        self._tokens = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()  # the rare operations that are coroutines (totals, flags)

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_unix_server(lambda: _Peer(self), self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def next_token(self) -> int:
        return next(self._tokens)

    def later(self, peer: _Peer, call: int, work) -> None:
        """A coroutine operation, answered when done (answers carry their call's id: order does not matter)."""
        async def run():
            peer.answer([call, await work])
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Peer(asyncio.Protocol):
    """The supervisor's end of one worker's connection: its counter ids and its unsettled reservations."""

    def __init__(self, server: StateServer):
        self.server = server
        self.state = server.state
        self.items: list[Item] = []  # by the id the worker gave each counter (0, 1, 2, ... in order)
        self.held: dict[int, Reservation] = {}
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        lines, self.pending = _lines(self.pending, data)
        answers = []
        try:
            for line in lines:
                answer = self.execute(orjson.loads(line))
                if answer is not None:
                    answers.append(orjson.dumps(answer, option=_LINE))
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError):
            log.warning("state process: a malformed message from a worker; closing its connection")
            self.transport.close()
            return
        if answers:  # what one read asked, answered in one write
            self.transport.write(b"".join(answers))

    def answer(self, message: list) -> None:
        if not self.transport.is_closing():
            self.transport.write(orjson.dumps(message, option=_LINE))

    def execute(self, message: list) -> list | None:
        op = message[0]
        if op == "r":
            return self.reserve(message[1], message[2], message[3], message[4])
        if op == "s":
            reservation = self.held.pop(message[1], None)
            if reservation is not None:
                amounts = message[2]
                self.state.settle(reservation, [0] * len(reservation.items) if amounts is None else amounts,
                                  message[3])
            return None
        if op == "d":
            ident, name, limit, kind, reset_at = message[1:6]
            if ident != len(self.items):
                raise ValueError("counter ids are defined in order")
            self.items.append(Item(name, math.inf if limit is None else limit, kind, reset_at))  # JSON: inf is null
            return None
        if op == "b":
            self.state.seed(message[1], message[2], message[3])
            return None
        server, state, call = self.server, self.state, message[1]
        if op == "B":
            return [call, state.born if len(message) == 2 else state.birth_of(message[2])]
        if op == "t":
            server.later(self, call, state.total(message[2], message[3], message[4]))
        elif op == "f+":
            server.later(self, call, _done(state.set_flag(message[2])))
        elif op == "f-":
            server.later(self, call, _done(state.clear_flag(message[2])))
        elif op == "F":
            server.later(self, call, _sorted(state.flags()))
        else:
            return [call, None]
        return None

    def reserve(self, call: int, now: float, ids: list[int], amounts: list[float]) -> list:
        table = self.items
        reservation, wait, refused = self.state.reserve_now([table[i] for i in ids], amounts, now)
        if reservation is None:
            return [call, 0, wait, refused]
        token = self.server.next_token()
        self.held[token] = reservation
        return [call, token, *self.state.figures(reservation)]  # + what the rate-limit headers report

    def connection_lost(self, exc) -> None:
        """The worker is gone, and its requests with it: they are no longer in flight (gauges back to zero);
        what else they reserved stays counted, as a request that ended without a report."""
        held, self.held = self.held, {}
        now = time.time()
        for reservation in held.values():
            amounts = [0 if item.kind == GAUGE else amount
                       for item, amount in zip(reservation.items, reservation.amounts)]
            self.state.settle(reservation, amounts, now)


async def _done(work) -> int:
    await work
    return 1


async def _sorted(work) -> list[str]:
    return sorted(await work)


class SocketState:
    """Runs in each worker: the state interface (see base.py) over the supervisor's socket."""

    backend = "memory"

    def __init__(self, path: str, workers: int):
        self.path = path
        self.workers = max(1, workers)
        self.shared = False  # until connected
        self._local = MemoryState()  # the fallback while the supervisor is unreachable
        self._link: _Link | None = None
        self._task: asyncio.Task | None = None

    # --- the request path --------------------------------------------------------------------------------------

    async def reserve(self, items: list[Item], amounts: list[float], now: float
                      ) -> tuple[Reservation | None, float, int]:
        link = self._link
        if link is not None:
            try:
                answer = await link.reserve(items, amounts, now)
            except ConnectionError:
                pass
            else:
                token = answer[1]
                if token:
                    return Reservation(items, amounts, (link, token), levels=answer[2], oldest=answer[3]), 0.0, -1
                return None, answer[2], answer[3]
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
        link, token = reservation.marks
        if link is self._link:  # a supervisor gone meanwhile took its counters with it: nothing to settle
            link.send(orjson.dumps(["s", token, amounts, now], option=_LINE))

    # --- budgets spent before the counters began (governance/seeding.py) ----------------------------------------

    async def birth(self, name: str | None = None, expiry: float = 0.0) -> float | None:
        """When the supervisor's counters began (or the budget counter `name`: MemoryState.birth_of); None while it
        is unreachable (nothing is seeded then)."""
        if self._link is None:
            return None
        try:
            return (await self._link.call(["B", 0] if name is None else ["B", 0, name]))[1]
        except ConnectionError:
            return None

    def seed(self, name: str, spent: float, expiry: float = 0.0) -> None:
        if self._link is not None:
            self._link.send(orjson.dumps(["b", name, spent, expiry], option=_LINE))

    async def seed_budget(self, name: str, spent: float, expiry: float) -> None:
        if self._link is None:  # the supervisor restarting: the seeder tries again
            raise ConnectionError("the state process is unreachable")
        self.seed(name, spent, expiry)

    # --- reads and flags ---------------------------------------------------------------------------------------

    async def total(self, name: str, kind: str, now: float) -> float:
        if self._link is None:
            return await self._local.total(name, kind, now)
        return (await self._link.call(["t", 0, name, kind, now]))[1]

    async def set_flag(self, name: str) -> None:
        await self._link.call(["f+", 0, name]) if self._link is not None else await self._local.set_flag(name)

    async def clear_flag(self, name: str) -> None:
        await self._link.call(["f-", 0, name]) if self._link is not None else await self._local.clear_flag(name)

    async def flags(self) -> set[str]:
        if self._link is None:
            return await self._local.flags()
        return set((await self._link.call(["F", 0]))[1])

    # --- the connection ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_connected())

    async def connect(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            _, link = await loop.create_unix_connection(lambda: _Link(loop), self.path)
        except OSError:
            return False
        self._link = link
        self.shared = True
        return True

    async def _keep_connected(self) -> None:
        while True:
            if self._link is None and not await self.connect():  # Gateway.start connected it the first time
                await asyncio.sleep(RETRY_S)
                continue
            await self._link.closed
            self._lost()

    def _lost(self) -> None:
        if self.shared:
            log.warning("state process unreachable: serving on local limits, this worker's 1/%d share of each",
                        self.workers)
        self.shared = False
        self._link = None

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._link is not None:
            self._link.close()

    def status(self) -> dict:
        return {"backend": "memory", "shared": self.shared, "workers": self.workers}


class _Link(asyncio.Protocol):
    """A worker's end of its connection to the supervisor: what one event-loop turn sends goes in one write."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = loop.create_future()
        self.out: list[bytes] = []  # this turn's messages, written when it ends
        self.waiting: dict[int, tuple[asyncio.Future, bool]] = {}  # by call: its answer, and whether a reserve
        self.calls = itertools.count(1)
        self.defined = 0  # counters defined on this connection (the next id)
        self.pending = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, line: bytes) -> None:
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(line)

    def flush(self) -> None:
        out, self.out = self.out, []
        if out and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def reserve(self, items: list[Item], amounts: list[float], now: float) -> asyncio.Future:
        ids = []
        for item in items:
            wire = item.wire
            if wire is None or wire[0] is not self:  # first use on this connection: define it
                wire = item.wire = (self, self.defined)
                self.defined += 1
                self.send(orjson.dumps(["d", wire[1], item.name, item.limit, item.kind, item.reset_at], option=_LINE))
            ids.append(wire[1])
        return self.call(["r", 0, now, ids, amounts], reserve=True)

    def call(self, message: list, reserve: bool = False) -> asyncio.Future:
        """Send `message` with a call id in its second place; the future is its answer."""
        if self.closed.done():
            raise ConnectionError("state process unreachable")
        call = message[1] = next(self.calls)
        future = self.loop.create_future()
        self.waiting[call] = (future, reserve)
        self.send(orjson.dumps(message, option=_LINE))
        return future

    def data_received(self, data: bytes) -> None:
        lines, self.pending = _lines(self.pending, data)
        try:
            for line in lines:
                answer = orjson.loads(line)
                future, reserve = self.waiting.pop(answer[0], (None, False))
                if future is not None and not future.done():
                    future.set_result(answer)
                elif reserve and answer[1]:  # its request was cancelled while waiting: give back what it took
                    self.send(orjson.dumps(["s", answer[1], None, time.time()], option=_LINE))
        except (orjson.JSONDecodeError, IndexError, TypeError):
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        waiting, self.waiting = self.waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("state process went away"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
