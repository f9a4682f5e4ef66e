"""Stored Responses (`store: true`, OpenAI's default): what `GET /v1/responses/{id}` returns and what
`previous_response_id` continues.

One table, `skyrelay_responses`, created if missing, in the gateway's database (SQLite by default, PostgreSQL when
configured). The request path never waits for it: a finished response is kept in a small in-memory cache at once
(a follow-up or a GET right after finds it there) and written by a writer thread; a read that misses the cache
runs in a worker thread. Each row keeps the Response as answered, the request's own input items, the whole
conversation a follow-up continues (earlier turns, input, output), and the deployment that produced it, so a
follow-up forwarded to that deployment's own Responses API can keep the id.

Responses expire after the retention (`database.responses_retention_days`, 30 as at OpenAI): an expired one is
not found at once, and the writer thread deletes expired rows in bounded batches between writes, so a large
backlog never holds the database (or the writes queued behind it) for long.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from . import Database

log = logging.getLogger("skyrelay.responses")

_CREATE = """CREATE TABLE IF NOT EXISTS skyrelay_responses (
    id TEXT PRIMARY KEY, model_group TEXT NOT NULL, deployment TEXT NOT NULL, native INTEGER NOT NULL, created_at BIGINT NOT NULL,
    body TEXT NOT NULL, input TEXT NOT NULL, conversation TEXT NOT NULL)"""
_INSERT = ("INSERT INTO skyrelay_responses (id, model_group, deployment, native, created_at, body, input, "
           "conversation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_SELECT = "SELECT model_group, deployment, native, body, input, conversation FROM skyrelay_responses WHERE id = ?"
_DELETE = "DELETE FROM skyrelay_responses WHERE id = ?"
_INDEX = "CREATE INDEX IF NOT EXISTS skyrelay_responses_created ON skyrelay_responses (created_at)"
_EXPIRE = ("DELETE FROM skyrelay_responses WHERE id IN (SELECT id FROM skyrelay_responses WHERE created_at < ? "
           "LIMIT ?)")
_CACHED = 256  # recent responses kept in memory (a conversation may be large: few are kept)
_BATCH = 64
_EXPIRE_BATCH = 500  # rows deleted per sweep; a full batch sweeps again at once, after the writes waiting
_SWEEP_EVERY_S = 60.0  # at most; a short retention sweeps more often (a tenth of it)
DEFAULT_RETENTION_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    group: str  # the model group it answered for (a key sees only its own groups' responses)
    deployment: str  # the deployment that produced it
    native: bool  # produced by that deployment's own Responses API (which knows the id too)
    body: dict[str, Any]  # the Response as answered
    input: list[dict[str, Any]]  # the request's own input items
    conversation: list[dict[str, Any]]  # what a follow-up continues: earlier turns, input, output

    @property
    def created_at(self) -> int:
        return int(self.body.get("created_at") or 0)


class ResponseStore:
    def __init__(self, database: Database, retention_s: float = DEFAULT_RETENTION_S):
        self.database = database
        self.retention_s = retention_s
        self.sweep_every_s = min(_SWEEP_EVERY_S, max(retention_s / 10, 0.1))
        self._cache: OrderedDict[str, StoredResponse | None] = OrderedDict()  # None: deleted
        self._writes: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="skyrelay-responses", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is not None:
            self._writes.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued write is in the database (tests, shutdown)."""
        marker = threading.Event()
        self._writes.put(marker)
        return marker.wait(timeout)

    # --- the request path: never blocks -----------------------------------------------------------------------

    def put(self, record: StoredResponse) -> None:
        self._remember(record.id, record)
        self._writes.put(("put", record))

    def delete(self, response_id: str) -> None:
        self._remember(response_id, None)
        self._writes.put(("delete", response_id))

    async def get(self, response_id: str) -> StoredResponse | None:
        """The stored response, or None: never stored, deleted, or expired (whether or not swept yet)."""
        if response_id in self._cache:
            self._cache.move_to_end(response_id)
            record = self._cache[response_id]
        else:
            record = await asyncio.to_thread(self._read, response_id)
        return record if record is not None and not self._expired(record.created_at) else None

    def _expired(self, created_at: int) -> bool:
        return created_at < time.time() - self.retention_s

    def _remember(self, response_id: str, record: StoredResponse | None) -> None:
        self._cache[response_id] = record
        self._cache.move_to_end(response_id)
        while len(self._cache) > _CACHED:
            self._cache.popitem(last=False)

    # --- the threads ----------------------------------------------------------------------------------------------

    def _connect(self):
        conn = self.database.connect()
        conn.execute(_CREATE)
        conn.execute(_INDEX)
        conn.commit()
        return conn

    def _read(self, response_id: str) -> StoredResponse | None:
        conn = self._connect()
        try:
            row = conn.execute(self.database.sql(_SELECT), (response_id,)).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        group, deployment, native, body, inputs, conversation = row
        return StoredResponse(response_id, group, deployment, bool(native), orjson.loads(body), orjson.loads(inputs),
                              orjson.loads(conversation))

    def _write_loop(self) -> None:
        conn = None
        next_sweep = time.monotonic() + self.sweep_every_s
        while True:
            try:
                work = [self._writes.get(timeout=max(next_sweep - time.monotonic(), 0))]
            except queue.Empty:
                work = []
            if time.monotonic() >= next_sweep:
                conn, full = self._sweep(conn)
                next_sweep = time.monotonic() + (0 if full else self.sweep_every_s)
                if not work:
                    continue
            while len(work) < _BATCH:
                try:
                    work.append(self._writes.get_nowait())
                except queue.Empty:
                    break
            try:
                if conn is None:
                    conn = self._connect()
                self._write(conn, [w for w in work if isinstance(w, tuple)])
            except Exception:  # the database is down or refused: these responses stay in memory only
                log.exception("could not store %d responses", len(work))
                if conn is not None:
                    conn.close()
                conn = None
            for item in work:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in work):
                if conn is not None:
                    conn.close()
                return

    def _sweep(self, conn) -> tuple[Any, bool]:
        """Delete one batch of expired rows; (the connection, whether the batch was full: more may be waiting)."""
        try:
            if conn is None:
                conn = self._connect()
            cursor = conn.execute(self.database.sql(_EXPIRE), (int(time.time() - self.retention_s), _EXPIRE_BATCH))
            conn.commit()
            return conn, cursor.rowcount >= _EXPIRE_BATCH
        except Exception:  # the database is down: expired rows wait for the next sweep (reads hide them anyway)
            log.warning("could not delete expired responses", exc_info=True)
            if conn is not None:
                conn.close()
            return None, False

    def _write(self, conn, work: list[tuple[str, Any]]) -> None:
        if not work:
            return
        insert, delete = self.database.sql(_INSERT), self.database.sql(_DELETE)
        for op, item in work:
            if op == "put":
                conn.execute(delete, (item.id,))  # a re-used id (a retry upstream) replaces the old row
                conn.execute(insert, (item.id, item.group, item.deployment, int(item.native), int(item.body.get("created_at")
                                      or 0), orjson.dumps(item.body).decode(), orjson.dumps(item.input).decode(),
                                      orjson.dumps(item.conversation).decode()))
            else:
                conn.execute(delete, (item,))
        conn.commit()
