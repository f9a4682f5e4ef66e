"""Several sinks starting at once on a fresh PostgreSQL schema (workers or replicas started together) all create
the ledger's table without one of them failing: CREATE TABLE IF NOT EXISTS alone is not safe against itself there."""

from __future__ import annotations

import threading

import orjson
import pytest

from skyrelay.db import parse_url
from skyrelay.ledger.sinks import Sink
from tests.support.ledger_rows import ledger_rows
from tests.support.postgres_service import fresh_schema, needs_postgres

from .test_spool import record

SINKS = 8


@needs_postgres
@pytest.mark.parametrize("round_", range(3))  # a race: several tries at it
def test_sinks_started_together_all_create_the_table_and_write(round_):
    with fresh_schema() as url:
        start = threading.Barrier(SINKS)
        failures: list[BaseException] = []

        def ship(n: int) -> None:
            sink = Sink(parse_url(url))
            start.wait()
            try:
                sink.write([orjson.loads(record(f"r{n}", 0))[1:]])
            except BaseException as exc:  # noqa: BLE001  (the assertion below names it)
                failures.append(exc)
            finally:
                sink.close()

        threads = [threading.Thread(target=ship, args=(n,)) for n in range(SINKS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(ledger_rows(url)) == SINKS
