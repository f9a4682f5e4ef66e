"""Keys and teams made through the admin API, in the gateway's database (skyrelay.db: SQLite or PostgreSQL).

Three tables, the same DDL in both dialects:
- `skyrelay_keys`: one row per key: its id, unique name, its HMAC digest (never the key), the fields the admin
  API accepts as JSON (`spec`), and when it was created, changed and revoked (a revoked key stays, refused).
- `skyrelay_teams`: one row per team: id, unique name, `spec`.
- `skyrelay_settings`: `revision` (bumped in the same transaction as every write, so replicas polling it see a
  change with one single-row read) and `key_secret` (the HMAC secret when `server.key_secret` is not set:
  generated once by the first replica that needs it; later ones read the same row).

Every call is blocking and runs on the store's one worker thread (`call`), never on the request path.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from ..db import Database

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS skyrelay_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS skyrelay_teams (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS skyrelay_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " digest TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)",
    "INSERT INTO skyrelay_settings (name, value) VALUES ('revision', '0') ON CONFLICT (name) DO NOTHING",
)
BUMP = "UPDATE skyrelay_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'revision'"
KEY_COLUMNS = "id, name, digest, spec, created_at, updated_at, revoked_at"
TEAM_COLUMNS = "id, name, spec, created_at, updated_at"


class Row(dict):
    """A key or team as stored: id, name, spec (a dict), created_at, updated_at (and a key's revoked_at)."""


class Store:
    def __init__(self, database: Database):
        self.database = database
        self._conn: Any = None
        self._ready = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skyrelay-store")

    async def call(self, method: str, *args: Any) -> Any:
        """Run one of the blocking methods below on the store's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, getattr(self, method), *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._conn = None

    # --- connection ---------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def exists(self) -> bool:
        """False for an embedded SQLite file nobody has created yet: no stored keys, and nothing to create until
        the first admin write (so a gateway without admin-made keys leaves no file behind)."""
        db = self.database
        return self._ready or db.dialect != "sqlite" or db.target == ":memory:" or os.path.exists(db.target)

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.database.connect()
            self._ready = False
        if not self._ready:
            self._create_schema()
            self._ready = True
        return self._conn

    def _create_schema(self) -> None:
        for attempt in range(3):  # replicas creating the tables at once on PostgreSQL may collide; the loser retries
            try:
                cur = self._conn.cursor()
                for statement in SCHEMA:
                    cur.execute(statement)
                self._conn.commit()
                return
            except Exception:
                self._conn.rollback()
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def _run(self, work):
        """`work(cursor)` in one transaction; a broken connection is dropped so the next call reconnects."""
        conn = self._connection()
        try:
            cur = conn.cursor()
            result = work(cur)
            conn.commit()
            return result
        except Exception:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - the connection itself is gone
                self._conn = None
            else:
                if self.database.dialect == "postgresql" and conn.closed:
                    self._conn = None
            raise

    # --- reads --------------------------------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The store's revision (changes with every write); None while the embedded file does not exist."""
        if not self.exists():
            return None
        return self._run(lambda cur: _one(cur, "SELECT value FROM skyrelay_settings WHERE name = 'revision'", ()))

    def key_secret(self) -> bytes:
        """The HMAC secret kept in the database: made once (the first writer wins a race), read ever after."""
        sql = self.database.sql
        generated = secrets.token_hex(32)

        def work(cur):
            cur.execute(sql("INSERT INTO skyrelay_settings (name, value) VALUES ('key_secret', ?) "
                            "ON CONFLICT (name) DO NOTHING"), (generated,))
            return _one(cur, "SELECT value FROM skyrelay_settings WHERE name = 'key_secret'", ())

        return bytes.fromhex(self._run(work))

    def load(self) -> tuple[list[Row], list[Row]]:
        """Every stored team and key (revoked keys included): a few hundred rows, read whole on each change."""
        def work(cur):
            cur.execute(f"SELECT {TEAM_COLUMNS} FROM skyrelay_teams ORDER BY created_at, id")
            teams = [_team(row) for row in cur.fetchall()]
            cur.execute(f"SELECT {KEY_COLUMNS} FROM skyrelay_keys ORDER BY created_at, id")
            return teams, [_key(row) for row in cur.fetchall()]

        return self._run(work)

    # --- writes (each bumps the revision in its own transaction) ------------------------------------------------

    def insert_key(self, row: Row) -> None:
        sql = self.database.sql
        self._write(sql(f"INSERT INTO skyrelay_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    (row["id"], row["name"], row["digest"], _spec(row), row["created_at"], row["updated_at"], None))

    def update_key(self, key_id: str, spec: dict, now: float) -> None:
        self._write(self.database.sql("UPDATE skyrelay_keys SET spec = ?, updated_at = ? WHERE id = ?"),
                    (orjson.dumps(spec).decode(), now, key_id))

    def revoke_key(self, key_id: str, now: float) -> None:
        self._write(self.database.sql("UPDATE skyrelay_keys SET revoked_at = ?, updated_at = ? "
                                      "WHERE id = ? AND revoked_at IS NULL"), (now, now, key_id))

    def insert_team(self, row: Row) -> None:
        sql = self.database.sql
        self._write(sql(f"INSERT INTO skyrelay_teams ({TEAM_COLUMNS}) VALUES (?, ?, ?, ?, ?)"),
                    (row["id"], row["name"], _spec(row), row["created_at"], row["updated_at"]))

    def update_team(self, team_id: str, spec: dict, now: float) -> None:
        self._write(self.database.sql("UPDATE skyrelay_teams SET spec = ?, updated_at = ? WHERE id = ?"),
                    (orjson.dumps(spec).decode(), now, team_id))

    def delete_team(self, team_id: str) -> None:
        self._write(self.database.sql("DELETE FROM skyrelay_teams WHERE id = ?"), (team_id,))

    def _write(self, statement: str, params: tuple) -> None:
        def work(cur):
            cur.execute(statement, params)
            cur.execute(BUMP)

        self._run(work)


def is_conflict(exc: BaseException) -> bool:
    """A UNIQUE constraint refused the write (a name or digest taken, by another replica in the meantime)."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return type(exc).__name__ in ("UniqueViolation", "IntegrityError")


def _one(cur, statement: str, params: tuple) -> Any:
    cur.execute(statement, params)
    found = cur.fetchone()
    return found[0] if found is not None else None


def _spec(row: Row) -> str:
    return orjson.dumps(row["spec"]).decode()


def _team(row) -> Row:
    team_id, name, spec, created, updated = row
    return Row(id=team_id, name=name, spec=orjson.loads(spec), created_at=created, updated_at=updated)


def _key(row) -> Row:
    key_id, name, digest, spec, created, updated, revoked = row
    return Row(id=key_id, name=name, digest=digest, spec=orjson.loads(spec), created_at=created, updated_at=updated,
               revoked_at=revoked)
