"""What the SQLite sink stores, pinned where its fast paths could change it: None binds as SQL NULL (not a string,
not 0) in every nullable column; every row of a batch lands whatever the batch's size against the rows bound per
statement; and a key twice in one batch keeps the rule of the conflict clause (a finished record wins over an
interrupted one, in either order, and a finished record already stored is left alone)."""

from __future__ import annotations

import sqlite3

import pytest

from skyrelay.db import parse_url
from skyrelay.ledger.schema import COLUMN_NAMES, COLUMNS, TABLE
from skyrelay.ledger.sinks import Sink

NULLABLE = [name for name, sqlite_type, _ in COLUMNS if "NOT NULL" not in sqlite_type]


def row(rid: str, attempt: int = 0, status: str = "ok", output: int = 10, **values) -> list:
    by_name = dict.fromkeys(COLUMN_NAMES)
    by_name.update(request_id=rid, attempt=attempt, started_at=1.0, status=status, input_tokens=5, cached_tokens=0,
                   cache_write_tokens=0, output_tokens=output, estimated=0, list_cost_usd=0.5, billed_cost_usd=0.4,
                   effective_cost_usd=0.4, streamed=0, hedged=0)
    by_name.update(values)
    return list(by_name.values())


def stored(path, columns: str = "*") -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT {columns} FROM {TABLE} ORDER BY request_id, attempt").fetchall()


def ship(path, *batches) -> None:
    sink = Sink(parse_url(f"sqlite:///{path}"))
    try:
        for batch in batches:
            sink.write(batch)
    finally:
        sink.close()


def test_none_is_stored_as_null_in_every_nullable_column(tmp_path):
    path = tmp_path / "l.db"
    ship(path, [row("r1"), tuple(row("r2", 1))])  # lists (an "r" line) and tuples (a joined "k" line) alike
    types = ", ".join(f"typeof({name})" for name in NULLABLE)
    assert stored(path, types) == [("null",) * len(NULLABLE)] * 2


def test_values_are_stored_with_their_types(tmp_path):
    path = tmp_path / "l.db"
    ship(path, [row("r1", 2, "failed", vendor="openai", deployment="d", region="eu", tier=1, error_kind="Timeout",
                    http_status=503, commitment="c", latency_ms=12.5, ttft_ms=3.0, ended_at=2.0, key_name="k",
                    team="t", model_group="g")])
    by_name = dict(zip(COLUMN_NAMES, stored(path)[0]))
    assert by_name == dict(zip(COLUMN_NAMES, row("r1", 2, "failed", vendor="openai", deployment="d", region="eu",
                                                 tier=1, error_kind="Timeout", http_status=503, commitment="c",
                                                 latency_ms=12.5, ttft_ms=3.0, ended_at=2.0, key_name="k", team="t",
                                                 model_group="g")))


@pytest.mark.parametrize("count", [1, 2, 39, 40, 41, 79, 80, 81, 1000])
def test_every_row_of_a_batch_lands(tmp_path, count):
    path = tmp_path / "l.db"
    ship(path, [row(f"r{n:05d}", n % 3, output=n) for n in range(count)])
    assert stored(path, "request_id, attempt, output_tokens") == [(f"r{n:05d}", n % 3, n) for n in range(count)]


@pytest.mark.parametrize("at", [10, 39])  # the pair within one statement's rows (of 40), then across two
@pytest.mark.parametrize("first, second", [("ok", "interrupted"), ("interrupted", "ok")])
def test_a_key_twice_in_one_batch_keeps_the_finished_record(tmp_path, first, second, at):
    path = tmp_path / "l.db"
    filler = [row(f"f{n:03d}") for n in range(45)]
    ship(path, filler[:at] + [row("r1", 1, first, output=1), row("r1", 1, second, output=2)] + filler[at:])
    assert stored(path, "status, output_tokens")[-1] == ("ok", 1 if first == "ok" else 2)
    ship(path, [row("r1", 1, "ok", output=3), row("r1", 1, "interrupted", output=4)])
    assert stored(path, "status, output_tokens")[-1] == ("ok", 1 if first == "ok" else 2)  # stored: left alone
    assert len(stored(path)) == 46


def test_a_failed_batch_commits_none_of_it(tmp_path):
    path = tmp_path / "l.db"
    rows = [row(f"r{n:03d}") for n in range(100)]
    rows[70] = row("bad", status=None)  # NOT NULL: the whole batch fails
    with pytest.raises(sqlite3.IntegrityError):
        ship(path, rows)
    ship(path, [row("after")])
    assert stored(path, "request_id") == [("after",)]



def _one_attempt_lines(variant: str) -> bytes:
    """A one-attempt request's "o" and "k" lines as the recorder writes them."""
    from skyrelay import errors

    from .test_lines import one_attempt_request, recorder

    rec, written, deployment = recorder()
    if variant == "served, streamed":
        one_attempt_request(rec, deployment, first_output=1.5)
    elif variant == "served":
        one_attempt_request(rec, deployment)
    elif variant == "failed":
        one_attempt_request(rec, deployment, status="failed", error=errors.UpstreamUnavailable("down"))
    elif variant == "broken stream":  # output began, then the cloud failed: served, with a cost estimated
        one_attempt_request(rec, deployment, status="failed", error=errors.UpstreamUnavailable("cut"),
                            first_output=1.75)
    else:  # left before any output: no cloud on the request's record, the attempt's cost estimated
        one_attempt_request(rec, deployment, status="abandoned")
    return b"".join(written)


@pytest.mark.parametrize("variant", ["served, streamed", "served", "failed", "broken stream", "abandoned"])
@pytest.mark.parametrize("count", [1, 20, 21, 45])  # one pair per statement, a statement's 20, and both
def test_pairs_joined_by_sqlite_are_stored_as_the_python_join_stores_them(tmp_path, variant, count):
    from skyrelay.ledger.lines import read_lines

    data = _one_attempt_lines(variant)
    lines = b"".join(data.replace(b'"req_1"', f'"req_{n}"'.encode()) for n in range(count))
    rows, _ = read_lines(lines, {})
    pairs: list = []
    assert read_lines(lines, {}, pairs) == ([], read_lines(lines, {})[1])  # the "o" lines still reported
    assert len(pairs) == count and len(rows) == 2 * count
    python, joined = tmp_path / "python.db", tmp_path / "joined.db"
    ship(python, rows)
    sink = Sink(parse_url(f"sqlite:///{joined}"))
    assert sink.joins_pairs
    try:
        sink.write([], pairs)
    finally:
        sink.close()
    typed = ", ".join(f"{name}, typeof({name})" for name in COLUMN_NAMES)
    assert stored(joined, typed) == stored(python, typed)
    assert stored(joined, "quote(latency_ms), quote(ttft_ms)") == stored(python, "quote(latency_ms), quote(ttft_ms)")


def test_pairs_and_rows_in_one_batch_commit_together_or_not_at_all(tmp_path):
    from skyrelay.ledger.lines import read_lines

    pairs: list = []
    read_lines(_one_attempt_lines("served"), {}, pairs)
    path = tmp_path / "l.db"
    sink = Sink(parse_url(f"sqlite:///{path}"))
    try:
        with pytest.raises(sqlite3.IntegrityError):
            sink.write([row("bad", status=None)], pairs)
        sink.write([row("r2")], pairs)
    finally:
        sink.close()
    assert stored(path, "request_id, attempt") == [("r2", 0), ("req_1", 0), ("req_1", 1)]


def test_the_shippers_commits_are_durable_before_they_return(tmp_path):
    """The shipper deletes a spool file once its records are committed, so a commit must survive a power loss:
    the WAL is fsynced at every commit (FULL), not only at checkpoints (NORMAL, the reports' connections)."""
    sink = Sink(parse_url(f"sqlite:///{tmp_path}/l.db"))
    sink.write([row("r1")])
    assert sink._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sink._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    sink.close()
