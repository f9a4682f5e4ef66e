"""The stored-Responses table on SQLite: written by its thread, read back by a store with an empty cache (another
process's view), deleted; the request path never waits for the database."""

from __future__ import annotations

import asyncio

from skyrelay.db import parse_url
from skyrelay.db.responses import ResponseStore, StoredResponse


def record(response_id: str) -> StoredResponse:
    body = {"id": response_id, "object": "response", "created_at": 1, "output": [{"type": "message"}]}
    return StoredResponse(response_id, "chat", "d1", True, body, [{"role": "user", "content": "hi"}],
                          [{"role": "user", "content": "hi"}, {"type": "message"}])


def test_put_then_read_back_elsewhere_then_delete(tmp_path):
    database = parse_url(f"sqlite:///{tmp_path}/s.db")
    store = ResponseStore(database)
    store.start()
    try:
        store.put(record("resp_a"))
        assert asyncio.run(store.get("resp_a")) == record("resp_a")  # from memory at once
        assert store.flush()
        other = ResponseStore(database)
        assert asyncio.run(other.get("resp_a")) == record("resp_a")  # from the database
        assert asyncio.run(other.get("resp_missing")) is None
        store.delete("resp_a")
        assert asyncio.run(store.get("resp_a")) is None
        assert store.flush()
        assert asyncio.run(ResponseStore(database).get("resp_a")) is None
    finally:
        store.close()
