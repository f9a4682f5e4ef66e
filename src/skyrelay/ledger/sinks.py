"""Where shipped records land: the `ledger_records` table in SQLite or PostgreSQL, one transaction per batch.

Idempotent by (request_id, attempt): shipping a record again (a process that died between the commit and deleting
its spool segment, then adopted) leaves the stored row as it was, so an amortised effective cost written later by
the money side is not undone. The one update allowed is a record that arrives finished for a row stored as
`interrupted`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..db import Database
from .schema import COLUMN_NAMES, TABLE, create_table_sql

log = logging.getLogger("skyrelay.ledger")


def upsert_sql(database: Database, table: str = TABLE) -> str:
    columns = ", ".join(COLUMN_NAMES)
    marks = ", ".join(database.param for _ in COLUMN_NAMES)
    updates = ", ".join(f"{name} = excluded.{name}" for name in COLUMN_NAMES[2:])
    return (f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT (request_id, attempt) DO UPDATE SET {updates} "
            f"WHERE {table}.status = 'interrupted' AND excluded.status <> 'interrupted'")


class Sink:
    """One connection, made on first use and again after a failure (the database may come and go)."""

    def __init__(self, database: Database, table: str = TABLE):
        self.database = database
        self.table = table
        self._sql = upsert_sql(database, table)
        self._conn: Any = None

    def write(self, rows: list) -> None:
        """Commit `rows` (sequences in COLUMN_NAMES order) at once, or raise and commit none of them."""
        conn = self._connection()
        try:
            cur = conn.cursor()
            cur.executemany(self._sql, rows)
            conn.commit()
        except BaseException:
            self.close()
            raise

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self.database.connect()
            try:
                for statement in create_table_sql(self.database.dialect, self.table):
                    conn.execute(statement)
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection the server already dropped
                pass
