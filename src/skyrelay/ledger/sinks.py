"""Where shipped records land: the `ledger_records` table in SQLite or PostgreSQL, one transaction per batch.

SQLite takes a batch as prepared statements of ROWS_PER_STATEMENT rows each (the rest one by one), and the two
records of a one-attempt request as the pair of spool lines that carry them, joined by the INSERT (lines.pair_sql:
fewer values bound, no Python row built); PostgreSQL by COPY into a temporary table and one
INSERT ... SELECT from it. Idempotent by (request_id, attempt): shipping a record again (a process that died between the commit and deleting
its spool segment, then adopted) leaves the stored row as it was, so an amortised effective cost written later by
the money side is not undone. The one update allowed is a record that arrives finished for a row stored as
`interrupted`.
"""

from __future__ import annotations

import logging
from itertools import chain
from typing import Any

from ..db import Database
from .lines import PAIR_VALUES, pair_sql
from .schema import COLUMN_NAMES, TABLE, ensure_table

log = logging.getLogger("skyrelay.ledger")

# SQLite: rows bound per INSERT. Each statement run costs its step, halt and reset whatever its rows (a fifth of a
# record's instructions one row at a time); 40 rows are 1,080 parameters, far below SQLite's limit of 32,766.
ROWS_PER_STATEMENT = 40
PAIRS_PER_STATEMENT = 20  # 700 parameters
_flat = chain.from_iterable


def upsert_sql(database: Database, table: str = TABLE, source: str | None = None, rows: int = 1) -> str:
    """The INSERT of `rows` rows (or of what `source` selects) that leaves a stored row alone. Rows of one
    statement meet the conflict clause one after the other, as separate statements would."""
    columns = ", ".join(COLUMN_NAMES)
    if source is None:
        one = "(" + ", ".join(database.param for _ in COLUMN_NAMES) + ")"
        source = "VALUES " + ", ".join([one] * rows)
    updates = ", ".join(f"{name} = excluded.{name}" for name in COLUMN_NAMES[2:])
    return (f"INSERT INTO {table} ({columns}) {source} "
            f"ON CONFLICT (request_id, attempt) DO UPDATE SET {updates} "
            f"WHERE {table}.status = 'interrupted' AND excluded.status <> 'interrupted'")


def _pairs_values(count: int) -> str:
    """VALUES of `count` pairs' rows, each pair's values numbered after the previous one's."""
    return "VALUES " + ", ".join(", ".join(pair_sql(1 + n * PAIR_VALUES)) for n in range(count))


class Sink:
    """One connection, made on first use and again after a failure (the database may come and go)."""

    def __init__(self, database: Database, table: str = TABLE):
        self.database = database
        self.table = table
        self._sql = upsert_sql(database, table)
        self._sql_many = upsert_sql(database, table, rows=ROWS_PER_STATEMENT)
        self.joins_pairs = database.dialect == "sqlite"  # write() takes pairs (lines.read_lines)
        self._pair = upsert_sql(database, table, source=_pairs_values(1))
        self._pairs_many = upsert_sql(database, table, source=_pairs_values(PAIRS_PER_STATEMENT))
        self._from_batch = upsert_sql(database, table, source=(
            f"SELECT DISTINCT ON (request_id, attempt) {', '.join(COLUMN_NAMES)} FROM {table}_batch "
            "ORDER BY request_id, attempt, status = 'interrupted'"))
        self._conn: Any = None

    def write(self, rows: list, pairs: list = ()) -> None:
        """Commit `rows` (sequences in COLUMN_NAMES order) and `pairs` (when `joins_pairs`) at once, or raise and
        commit none of them. Pairs go after the rows, out of spool order: harmless, since a "k" line is the only
        line of its request's records, so no row of the batch shares a key with a pair."""
        conn = self._connection()
        try:
            cur = conn.cursor()
            if self.database.dialect == "sqlite":
                self._insert(cur, rows)
                if pairs:
                    self._insert_pairs(cur, pairs)
            else:
                self._copy(cur, rows)
            conn.commit()
        except BaseException:
            self.close()
            raise

    def _insert(self, cur: Any, rows: list) -> None:
        """SQLite: ROWS_PER_STATEMENT rows per statement run, in order, then the rest one by one (prepared once
        each, bound in C)."""
        _in_runs(cur, rows, ROWS_PER_STATEMENT, self._sql_many, self._sql)

    def _insert_pairs(self, cur: Any, pairs: list) -> None:
        _in_runs(cur, pairs, PAIRS_PER_STATEMENT, self._pairs_many, self._pair)

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
                if self.database.dialect == "sqlite":
                    # A commit is durable before it returns (the WAL fsynced: ~0.2 ms, a few dozen times a second
                    # at most), since the shipper then deletes the spool that held the records. WAL's NORMAL
                    # syncs only at checkpoints: a power loss could undo commits whose spool was gone already.
                    conn.execute("PRAGMA synchronous=FULL")
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


def _in_runs(cur: Any, items: list, per: int, sql_many: str, sql_one: str) -> None:
    """`items` bound `per` to a run of `sql_many` (their parameters flattened), then the rest one by one."""
    whole = len(items) - len(items) % per
    if whole:
        cur.executemany(sql_many, [tuple(_flat(items[at:at + per])) for at in range(0, whole, per)])
    if whole < len(items):
        cur.executemany(sql_one, items[whole:])
