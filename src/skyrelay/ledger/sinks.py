"""Where shipped records land: the `ledger_records` table in SQLite or PostgreSQL, one transaction per batch.

SQLite takes a batch as one prepared statement bound per row; PostgreSQL by COPY into a temporary table and one
INSERT ... SELECT from it. Idempotent by (request_id, attempt): shipping a record again (a process that died between the commit and deleting
its spool segment, then adopted) leaves the stored row as it was, so an amortised effective cost written later by
the money side is not undone. The one update allowed is a record that arrives finished for a row stored as
`interrupted`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..db import Database
from .schema import COLUMN_NAMES, TABLE, ensure_table

log = logging.getLogger("skyrelay.ledger")


def upsert_sql(database: Database, table: str = TABLE, source: str | None = None) -> str:
    """The INSERT of one row (or of what `source` selects) that leaves a stored row alone."""
    columns = ", ".join(COLUMN_NAMES)
    if source is None:
        source = "VALUES (" + ", ".join(database.param for _ in COLUMN_NAMES) + ")"
    updates = ", ".join(f"{name} = excluded.{name}" for name in COLUMN_NAMES[2:])
    return (f"INSERT INTO {table} ({columns}) {source} "
            f"ON CONFLICT (request_id, attempt) DO UPDATE SET {updates} "
            f"WHERE {table}.status = 'interrupted' AND excluded.status <> 'interrupted'")


class Sink:
    """One connection, made on first use and again after a failure (the database may come and go)."""

    def __init__(self, database: Database, table: str = TABLE):
        self.database = database
        self.table = table
        self._sql = upsert_sql(database, table)
        self._from_batch = upsert_sql(database, table, source=(
            f"SELECT DISTINCT ON (request_id, attempt) {', '.join(COLUMN_NAMES)} FROM {table}_batch "
            "ORDER BY request_id, attempt, status = 'interrupted'"))
        self._conn: Any = None

    def write(self, rows: list) -> None:
        """Commit `rows` (sequences in COLUMN_NAMES order) at once, or raise and commit none of them."""
        conn = self._connection()
        try:
            cur = conn.cursor()
            if self.database.dialect == "sqlite":  # one prepared statement, bound per row in C
                cur.executemany(self._sql, rows)
            else:
                self._copy(cur, rows)
            conn.commit()
        except BaseException:
            self.close()
            raise

    def _copy(self, cur: Any, rows: list) -> None:
        """PostgreSQL: COPY the batch into a temporary table, then one INSERT ... SELECT moves it over (one row
        per key even when the batch holds two: a finished record before an interrupted one)."""
        columns = ", ".join(COLUMN_NAMES)
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {self.table}_batch (LIKE {self.table}) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {self.table}_batch ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(self._from_batch)

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self.database.connect()
            try:
                ensure_table(conn, self.database.dialect, self.table)
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
