"""PostgreSQL for the tests: a schema or a database of the test's own on the shared server (127.0.0.1:5432,
database `test`, started by .ci/services), and a private server in a temporary directory for tests that stop and
start it (the shared one is never stopped)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
PG_BIN = "/usr/lib/postgresql/15/bin"


def postgres_reachable() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001  (not installed, not running, refusing: all mean skip)
        return False


needs_postgres = pytest.mark.skipif(
    not postgres_reachable(), reason=f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} (.ci/services starts it)")
needs_pg_binaries = pytest.mark.skipif(
    not os.path.exists(os.path.join(PG_BIN, "initdb")), reason=f"no initdb/pg_ctl in {PG_BIN} (Debian's postgresql)")


def in_schema(url: str, schema: str) -> str:
    """The URL whose connections see `schema` first (their tables are created there)."""
    return f"{url}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema(url: str = PG_URL) -> Iterator[str]:
    """A schema of this test's own; the URL that uses it. Dropped afterwards with everything in it."""
    import psycopg

    schema = f"ledger_test_{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """A PostgreSQL server of the test's own on a free port (trust auth, database `postgres`), run as the
    `postgres` user when we are root (initdb refuses root)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="skyrelay-pg-")
        self.data = os.path.join(self.dir, "data")
        os.chmod(self.dir, 0o755)
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, os.path.join(PG_BIN, tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_database_url(request, tmp_path):
    """A test's own ledger database, once on SQLite and once on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} (.ci/services starts it)")
    with fresh_schema() as url:
        yield url
