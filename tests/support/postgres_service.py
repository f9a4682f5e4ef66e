"""The PostgreSQL the distributed tests talk to (127.0.0.1:5432, trust auth, started by .ci/services), and a
database of a test's own, created fresh and dropped after, so tests run in parallel and leave nothing behind."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            pass
        import psycopg

        psycopg.connect(ADMIN_URL, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: skip
        return False


needs_postgres = pytest.mark.skipif(not postgres_reachable(),
                                    reason=f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} (.ci/services starts it)")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database; dropped (connections and all) when the block ends."""
    import psycopg

    name = f"skyrelay_test_{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
