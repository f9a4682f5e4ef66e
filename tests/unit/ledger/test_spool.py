"""The spool and the shipper without a gateway: segments rotate and go once shipped, an open attempt pins its
segment, a dead owner's spool is adopted with its open attempts closed as interrupted, torn lines are skipped."""

from __future__ import annotations

import os
import time

import orjson

from skyrelay.db import parse_url
from skyrelay.ledger.lines import read_lines
from skyrelay.ledger.record import header
from skyrelay.ledger.schema import COLUMN_NAMES
from skyrelay.ledger import shipper as shipper_module
from skyrelay.ledger.shipper import Shipper
from skyrelay.ledger.sinks import Sink
from skyrelay.ledger.spool import LOCK_SUFFIX, Spool
from tests.support.ledger_rows import by_key, ledger_rows


def record(rid: str, attempt: int, status: str = "ok", output: int = 10) -> bytes:
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(request_id=rid, attempt=attempt, started_at=1.0, ended_at=2.0, status=status, input_tokens=5,
               cached_tokens=0, cache_write_tokens=0, output_tokens=output, estimated=0, list_cost_usd=0.5,
               billed_cost_usd=0.4, effective_cost_usd=0.4, streamed=0, hedged=0, deployment="d", model_group="g")
    return orjson.dumps(["r", *row.values()]) + b"\n"


def opened(rid: str, attempt: int) -> bytes:
    return orjson.dumps(["o", rid, attempt, 1.5, "key", "team", "g", "openai", "d", "eu", 0, 7, 3, 0]) + b"\n"


def free(name, usage, when, estimated):
    return (usage.input_tokens, 0, 0, usage.output_tokens, estimated, 0.0, 0.0, 0.0, None)


def shipper_for(spool: Spool, url: str) -> Shipper:
    return Shipper(spool, Sink(parse_url(url)), free)


def ship_all(shipper: Shipper) -> None:
    while not shipper._ship_own():
        pass


def segment_files(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".spool"))


def test_segments_rotate_and_go_once_their_records_are_committed(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    spool = Spool(str(tmp_path / "spool"), 64 << 10, header)
    shipper = shipper_for(spool, url)
    for n in range(600):  # ~280 bytes each: several segments
        spool.append(opened(f"r{n}", 1))
        spool.append(record(f"r{n}", 1) + record(f"r{n}", 0))
    assert len(segment_files(tmp_path / "spool")) >= 3
    ship_all(shipper)
    assert len(ledger_rows(url)) == 1200
    assert segment_files(tmp_path / "spool") == [os.path.basename(spool.segments[-1].path)]  # the live one
    ship_all(shipper)  # again: nothing new, nothing twice
    assert len(ledger_rows(url)) == 1200
    spool.close(shipped=True)
    assert os.listdir(tmp_path / "spool") == []


def test_an_open_attempt_pins_its_segment_until_its_record_is_shipped(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    spool = Spool(str(tmp_path / "spool"), 64 << 10, header)
    shipper = shipper_for(spool, url)
    spool.append(opened("long", 1))
    first = spool.segments[0].path
    for n in range(1000):
        spool.append(record(f"r{n}", 0))
    ship_all(shipper)
    assert os.path.exists(first) and len(spool.segments) > 1  # still needed by the open attempt
    spool.append(record("long", 1) + record("long", 0))
    ship_all(shipper)
    assert not os.path.exists(first)
    assert by_key(ledger_rows(url))[("long", 1)]["status"] == "ok"


def test_a_dead_owners_open_attempts_are_shipped_as_interrupted_with_their_estimate(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    directory = str(tmp_path / "spool")
    dead = Spool(directory, 64 << 10, header)
    dead.append(opened("done", 1) + record("done", 1) + record("done", 0))
    dead.append(opened("retried", 1) + record("retried", 1, "failed", 0) + opened("retried", 2))
    dead.append(opened("hung", 1))
    dead.close(shipped=False)  # as a killed process leaves it (its lock released by the kernel)
    live = Spool(directory, 64 << 10, header)
    shipper = shipper_for(live, url)
    shipper.start()
    shipper.stop()
    rows = by_key(ledger_rows(url))
    assert len(rows) == 7
    assert rows[("hung", 1)]["status"] == rows[("retried", 2)]["status"] == "interrupted"
    hung = rows[("hung", 1)]
    assert (hung["input_tokens"], hung["output_tokens"], hung["estimated"]) == (7, 3, 1)
    assert (hung["key_name"], hung["team"], hung["region"]) == ("key", "team", "eu")
    retried = rows[("retried", 0)]  # the request record the dead process never wrote
    assert (retried["status"], retried["input_tokens"], retried["output_tokens"]) == ("interrupted", 12, 3)
    assert rows[("done", 0)]["status"] == "ok"
    assert sorted(os.listdir(directory)) == sorted(
        [live.owner + LOCK_SUFFIX, os.path.basename(live.segments[0].path)])
    live.close(shipped=shipper.clean)


def test_a_record_shipped_again_leaves_the_stored_row_alone(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    sink = Sink(parse_url(url))
    row = orjson.loads(record("r", 1))[1:]
    sink.write([row])
    conn = parse_url(url).connect()
    conn.execute("UPDATE ledger_records SET effective_cost_usd = 9")  # as an amortisation pass would
    conn.commit()
    sink.write([row])
    assert ledger_rows(url)[0]["effective_cost_usd"] == 9


def test_torn_lines_and_unwritten_pages_are_skipped():
    data = header("x") + record("a", 0) + b"\0" * 4096 + b'["r", "torn' + b"\n" + record("b", 0) + b"\0" * 100
    assert [row[0] for row in read_lines(data, {})[0]] == ["a", "b"]


def test_postgresql_takes_a_batch_that_holds_a_key_twice_once(tmp_path):
    from tests.support.postgres_service import fresh_schema, postgres_reachable

    if not postgres_reachable():
        import pytest

        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432 (.ci/services starts it)")
    with fresh_schema() as url:
        sink = Sink(parse_url(url))
        interrupted = orjson.loads(record("r", 1, "interrupted"))[1:]
        finished = orjson.loads(record("r", 1))[1:]
        sink.write([interrupted, finished, orjson.loads(record("s", 0))[1:]])
        sink.write([interrupted])  # again, later: the finished row stays
        rows = by_key(ledger_rows(url))
        sink.close()
        assert len(rows) == 2 and rows[("r", 1)]["status"] == "ok"


def test_a_version_1_one_attempt_line_is_still_read_as_its_two_records():
    request = orjson.loads(record("q1", 0))[1:]
    request[COLUMN_NAMES.index("http_status")] = 200
    own = [1.1, 1.9, "ok", None, 800.0, None, 0, "openai", "d", "eu", 0]
    data = orjson.dumps(["h", 1, "old", COLUMN_NAMES]) + b"\n" + orjson.dumps(["q", *request, *own]) + b"\n"
    rows = [dict(zip(COLUMN_NAMES, row)) for row in read_lines(data, {})[0]]
    assert [(row["attempt"], row["http_status"], row["started_at"], row["region"]) for row in rows] == [
        (1, None, 1.1, "eu"), (0, 200, 1.0, None)]


def test_a_pass_starts_once_enough_waits_without_waiting_for_the_interval(tmp_path, monkeypatch):
    """Under load the shipper ships in short passes (each holds the GIL the event loop needs): once SHIP_BYTES of
    spool wait, a pass starts whatever is left of SHIP_INTERVAL."""
    monkeypatch.setattr(shipper_module, "SHIP_INTERVAL", 600.0)  # only the bytes waiting can start a pass
    url = f"sqlite:///{tmp_path}/l.db"
    spool = Spool(str(tmp_path / "spool"), 1 << 20, header)
    shipper = shipper_for(spool, url)
    shipper.start()
    try:
        requests = shipper_module.SHIP_BYTES // 250 + 50  # more than SHIP_BYTES of lines
        for n in range(requests):
            spool.append(opened(f"r{n}", 1) + record(f"r{n}", 1) + record(f"r{n}", 0))
        deadline = time.monotonic() + 20
        while shipper.shipped < 2 * requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shipper.shipped == 2 * requests
    finally:
        shipper.stop()
        spool.close(shipped=shipper.clean)
    assert len(ledger_rows(url)) == 2 * requests
