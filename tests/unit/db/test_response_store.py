"""The stored-Responses table on SQLite: written by its thread, read back by a store with an empty cache (another
process's view), deleted; the request path never waits for the database; expired responses are not found and are
swept in bounded batches."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from skyrelay.db import parse_url
from skyrelay.db.responses import ResponseStore, StoredResponse


def record(response_id: str, created_at: int | None = None) -> StoredResponse:
    body = {"id": response_id, "object": "response", "created_at": int(time.time()) if created_at is None else
            created_at, "output": [{"type": "message"}]}
    return StoredResponse(response_id, "chat", "d1", True, body, [{"role": "user", "content": "hi"}],
                          [{"role": "user", "content": "hi"}, {"type": "message"}])


def test_put_then_read_back_elsewhere_then_delete(tmp_path):
    database = parse_url(f"sqlite:///{tmp_path}/s.db")
    store = ResponseStore(database)
    store.start()
    try:
        stored = record("resp_a")  # once: two records made a second apart differ in created_at
        store.put(stored)
        assert asyncio.run(store.get("resp_a")) == stored  # from memory at once
        assert store.flush()
        other = ResponseStore(database)
        assert asyncio.run(other.get("resp_a")) == stored  # from the database
        assert asyncio.run(other.get("resp_missing")) is None
        store.delete("resp_a")
        assert asyncio.run(store.get("resp_a")) is None
        assert store.flush()
        assert asyncio.run(ResponseStore(database).get("resp_a")) is None
    finally:
        store.close()


def test_an_expired_response_is_not_found_and_expired_rows_go_in_bounded_batches(tmp_path):
    database = parse_url(f"sqlite:///{tmp_path}/s.db")
    store = ResponseStore(database, retention_s=3600)
    old = int(time.time()) - 7200
    store.put(record("resp_old", old))
    assert asyncio.run(store.get("resp_old")) is None  # expired: hidden at once, swept or not
    conn = store._connect()
    conn.executemany("INSERT INTO skyrelay_responses VALUES (?, 'chat', 'd1', 0, ?, '{}', '[]', '[]')",
                     [(f"resp_{i}", old) for i in range(1200)] + [("resp_new", int(time.time()))])
    conn.commit()
    conn, full = store._sweep(conn)
    assert full and _count(tmp_path) == 701  # one batch of 500
    store._sweep(conn)
    conn, full = store._sweep(conn)
    assert not full and _count(tmp_path) == 1  # the fresh one stays
    conn.close()


def test_the_writer_thread_sweeps_on_its_own(tmp_path):
    database = parse_url(f"sqlite:///{tmp_path}/s.db")
    store = ResponseStore(database, retention_s=5)
    store.start()
    try:
        store.put(record("resp_a", int(time.time()) - 10))
        store.put(record("resp_b"))
        assert store.flush()
        deadline = time.monotonic() + 5
        while _count(tmp_path) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(tmp_path) == 1
    finally:
        store.close()


def _count(tmp_path) -> int:
    with sqlite3.connect(f"{tmp_path}/s.db") as conn:
        return conn.execute("SELECT count(*) FROM skyrelay_responses").fetchone()[0]
