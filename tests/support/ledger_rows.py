"""Reading the ledger's table back in tests, from SQLite or PostgreSQL alike."""

from __future__ import annotations

import time
from typing import Callable

from skyrelay.db import parse_url
from skyrelay.ledger.schema import COLUMN_NAMES, TABLE


def ledger_rows(url: str) -> list[dict]:
    """Every stored record, as dicts; [] while the table does not exist yet."""
    database = parse_url(url)
    conn = database.connect()
    try:
        rows = conn.execute(f"SELECT {', '.join(COLUMN_NAMES)} FROM {TABLE}").fetchall()
    except Exception:  # noqa: BLE001  (no table yet: nothing shipped)
        return []
    finally:
        conn.close()
    return [dict(zip(COLUMN_NAMES, row)) for row in rows]


def wait_for_rows(url: str, done: Callable[[list[dict]], bool], timeout: float = 20.0) -> list[dict]:
    """The rows once `done(rows)` holds (the shipper runs behind the requests), or the last ones read."""
    deadline = time.monotonic() + timeout
    while True:
        rows = ledger_rows(url)
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def by_key(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(row["request_id"], row["attempt"]): row for row in rows}
