"""A ledger table of the test's own, on SQLite (a temp file) and on the shared PostgreSQL (127.0.0.1:5432, database
`test`, in a schema made for the test and dropped after), and a helper that writes records into it directly."""

from __future__ import annotations

import os
import socket
from contextlib import closing
from urllib.parse import quote

import pytest

from skyrelay.ledger.schema import COLUMN_NAMES
from skyrelay.ledger.store import LedgerStore

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


def schema_url(schema: str) -> str:
    """The shared database, with `schema` first on the search path: unqualified table names land there."""
    return f"{PG_URL}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """A database URL whose ledger table is this test's alone (the same test runs on both dialects)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} (.ci/services starts it)")
    import psycopg

    schema = f"t_{os.getpid()}_{os.urandom(4).hex()}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} refused {PG_URL}: {exc}")
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def ledger_store(ledger_url):
    store = LedgerStore.from_url(ledger_url)
    try:
        yield store
    finally:
        store.close()


_DEFAULTS = {"attempt": 1, "status": "ok", "input_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0,
             "output_tokens": 0, "estimated": 0, "list_cost_usd": 0.0, "billed_cost_usd": 0.0,
             "effective_cost_usd": 0.0, "streamed": 0, "hedged": 0}


def insert(store: LedgerStore, *records: dict) -> None:
    """Write records as the shipper would (missing columns take their defaults; ended_at = started_at + 1)."""
    rows = []
    for record in records:
        full = {**_DEFAULTS, "ended_at": record["started_at"] + 1.0, **record}
        unknown = set(full) - set(COLUMN_NAMES)
        assert not unknown, f"not ledger columns: {unknown}"
        rows.append(tuple(full.get(name) for name in COLUMN_NAMES))
    marks = ", ".join("?" for _ in COLUMN_NAMES)
    sql = store.db.sql(f"INSERT INTO {store.table} ({', '.join(COLUMN_NAMES)}) VALUES ({marks})")
    with closing(store.conn.cursor()) as cur:
        cur.executemany(sql, rows)
    store.conn.commit()
