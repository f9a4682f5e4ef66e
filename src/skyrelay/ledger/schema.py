"""The ledger's one table, in both dialects: one row per client request (attempt 0) and one per attempt that reached
a cloud (1..n), keyed by (request_id, attempt) so shipping the same record twice updates it instead of adding it."""

from __future__ import annotations

# (column, SQLite type, PostgreSQL type), in table order; new columns go at the end.
COLUMNS = (
    ("request_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("attempt", "INTEGER NOT NULL", "INTEGER NOT NULL"),
    ("started_at", "REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    ("ended_at", "REAL", "DOUBLE PRECISION"),
    ("key_name", "TEXT", "TEXT"),
    ("team", "TEXT", "TEXT"),
    ("model_group", "TEXT", "TEXT"),
    ("vendor", "TEXT", "TEXT"),
    ("deployment", "TEXT", "TEXT"),
    ("region", "TEXT", "TEXT"),
    ("tier", "INTEGER", "INTEGER"),
    ("status", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("error_kind", "TEXT", "TEXT"),
    ("http_status", "INTEGER", "INTEGER"),
    ("input_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    ("cached_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    ("output_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    ("estimated", "INTEGER NOT NULL DEFAULT 0", "SMALLINT NOT NULL DEFAULT 0"),
    ("list_cost_usd", "REAL NOT NULL DEFAULT 0", "DOUBLE PRECISION NOT NULL DEFAULT 0"),
    ("billed_cost_usd", "REAL NOT NULL DEFAULT 0", "DOUBLE PRECISION NOT NULL DEFAULT 0"),
    ("effective_cost_usd", "REAL NOT NULL DEFAULT 0", "DOUBLE PRECISION NOT NULL DEFAULT 0"),
    ("commitment", "TEXT", "TEXT"),
    ("latency_ms", "REAL", "DOUBLE PRECISION"),
    ("ttft_ms", "REAL", "DOUBLE PRECISION"),
    ("streamed", "INTEGER NOT NULL DEFAULT 0", "SMALLINT NOT NULL DEFAULT 0"),
    ("hedged", "INTEGER NOT NULL DEFAULT 0", "SMALLINT NOT NULL DEFAULT 0"),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)
TABLE = "ledger_records"


def create_table_sql(dialect: str, table: str = TABLE) -> list[str]:
    """The statements that create the table and its report indexes when missing (safe to run on every start)."""
    pick = 1 if dialect == "sqlite" else 2
    columns = ",\n  ".join(f"{column[0]} {column[pick]}" for column in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (\n  {columns},\n  PRIMARY KEY (request_id, attempt)\n)",
        f"CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at)",
    ]


def ensure_table(conn, dialect: str, table: str = TABLE) -> None:
    """Create the table and its index when missing, and commit. PostgreSQL's CREATE ... IF NOT EXISTS is not safe
    against itself: two sessions creating the same table at once can fail on the catalog's unique index (several
    workers or replicas starting together). A transaction-level advisory lock on the table's name serialises the
    creators; the second one then finds the table there."""
    cur = conn.cursor()
    try:
        if dialect == "postgresql":
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("skyrelay.ledger." + table,))
        for statement in create_table_sql(dialect, table):
            cur.execute(statement)
    finally:
        cur.close()
    conn.commit()
