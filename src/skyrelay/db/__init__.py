"""The one relational database the gateway keeps (keys and teams made through the admin API, the ledger, stored
Responses): embedded SQLite by default, PostgreSQL when `database.url` says so.

Deliberately thin: a URL that names the dialect, a connection factory, and the dialect's parameter style, so each
owner of a table (governance, ledger, responses) writes its own small SQL and the two dialects stay visible in it.
Connections are blocking: callers use them off the request path (a shipper thread, an admin call), never per request.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "sqlite:///./.skyrelay/skyrelay.db"
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")

# Python 3.11's sqlite3 binds int, float and str directly but sends every other value, None included, through its
# adapter lookup, which fails by formatting an AttributeError it then drops: ~3,000 CPU instructions per NULL, a
# third of what the ledger's shipper spends per record (rows carry 4-5 NULLs). An adapter registered for None
# answers that lookup at once; None still binds as NULL. Process-wide: every SQLite connection gains.
sqlite3.register_adapter(type(None), {}.get)  # C, not a Python call: None for any argument


@dataclass(frozen=True, slots=True)
class Database:
    """Where the tables live. `dialect` is "sqlite" or "postgresql"; `target` is the SQLite file path (or
    ":memory:") or the PostgreSQL conninfo URL. `url` may hold a password: it is never printed (repr hides it)."""

    dialect: str
    target: str

    def __repr__(self) -> str:
        shown = self.target if self.dialect == "sqlite" else "postgresql://…"
        return f"Database({self.dialect}, {shown})"

    @property
    def param(self) -> str:
        """The dialect's placeholder for one bound parameter in SQL text."""
        return "?" if self.dialect == "sqlite" else "%s"

    def connect(self) -> Any:
        """A new DB-API connection (not shared between threads). SQLite runs in WAL mode so a reader (a report)
        never blocks the shipper; PostgreSQL needs psycopg, imported only here."""
        if self.dialect == "sqlite":
            if self.target != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(self.target)), exist_ok=True)
            conn = sqlite3.connect(self.target, timeout=30.0, check_same_thread=False)
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg  # noqa: PLC0415  (only a PostgreSQL deployment pays for the import)

        return psycopg.connect(self.target, connect_timeout=5)

    def sql(self, text: str) -> str:
        """SQL written with `?` placeholders, in this dialect's style."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")


def _wal(conn: sqlite3.Connection, tries: int = 50) -> None:
    """Switch a SQLite file to WAL. The switch needs the file to itself and SQLite may refuse it at once (busy)
    rather than wait, when several connections open a new file together (the shipper, a report): so retry."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.02)


def parse_url(url: str) -> Database | None:
    """The Database a URL names, or None when it is neither `sqlite:///path` nor `postgresql://...`."""
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):]
        return Database("sqlite", path or ":memory:") if path else None
    if url.startswith(POSTGRES_PREFIXES):
        return Database("postgresql", url)
    return None
