"""How reports read (and the amortisation updates) the ledger table: one connection, SQL written once with `?`
placeholders, and the few expressions that differ between SQLite and PostgreSQL.

Reports run off the request path (the CLI, an admin call in a worker thread), on their own connection."""

from __future__ import annotations

import os
from contextlib import closing
from typing import Any

from ..db import Database, parse_url
from .schema import TABLE, ensure_table

HOUR = 3600.0


class LedgerStore:
    """The ledger table of one database. `table` lets tests (and a shared database) keep their own table.
    `create` False: a SQLite file that does not exist yet is not created (a report on it reports nothing)."""

    __slots__ = ("db", "table", "create", "_conn")

    def __init__(self, db: Database, table: str = TABLE, create: bool = True):
        self.db = db
        self.table = table
        self.create = create
        self._conn: Any = None

    @classmethod
    def from_url(cls, url: str, table: str = TABLE, create: bool = True) -> "LedgerStore":
        db = parse_url(url)
        if db is None:
            raise ValueError("the database URL is neither sqlite:///path nor postgresql://...")
        return cls(db, table, create)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
            self.ensure_table()
        return self._conn

    def _connect(self) -> Any:
        db = self.db
        if not self.create and db.dialect == "sqlite" and db.target != ":memory:" and not os.path.exists(db.target):
            db = Database("sqlite", ":memory:")  # nothing recorded yet: report on nothing, create no file
        return db.connect()

    def ensure_table(self) -> None:
        """Reports may run before the gateway ever shipped a record: an empty table, not an error (made under the
        same lock as the shipper's, schema.ensure_table). A reader that may not create tables still reads one
        that is there."""
        try:
            ensure_table(self._conn, self.db.dialect, self.table)
        except Exception:
            self._conn.rollback()
            if not self._table_exists():
                raise

    def _table_exists(self) -> bool:
        try:
            with closing(self._conn.cursor()) as cur:
                cur.execute(f"SELECT 1 FROM {self.table} LIMIT 1")
                cur.fetchall()
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001  (either dialect's "no such table")
            self._conn.rollback()
            return False

    def hour_of(self, column: str = "started_at") -> str:
        """The SQL for the epoch hour (an integer) a time column falls in."""
        if self.db.dialect == "sqlite":
            return f"CAST({column} / 3600 AS INTEGER)"
        return f"CAST(FLOOR({column} / 3600) AS BIGINT)"

    def rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """`sql` with `{t}` for the table and `?` placeholders."""
        with closing(self.conn.cursor()) as cur:
            cur.execute(self.db.sql(sql.format(t=self.table)), tuple(params))
            found = cur.fetchall()
        self.conn.commit()  # PostgreSQL: end the read's transaction, so the next read sees new records
        return found

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        with closing(self.conn.cursor()) as cur:
            cur.execute(self.db.sql(sql.format(t=self.table)), tuple(params))
            count = cur.rowcount
        self.conn.commit()
        return count

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "LedgerStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
