"""Spend reports by any dimensions over a window, on SQLite and PostgreSQL: attempts summed (never the request
records on top of them), reserved hours amortised first, costs to the cent."""

from __future__ import annotations

import datetime

import pytest

from skyrelay.ledger.reports import ReportError, as_json, parse_dimensions, parse_time, render, spend, totals

from tests.support.ledger_tables import insert
from tests.unit.ledger.ledger_money_cases import RESERVED, UTC

T0 = datetime.datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp()


def records():
    def rec(rid, n, team, key, vendor, deployment, billed, *, tokens=(100, 10), commitment=None, at=T0, **more):
        return {"request_id": rid, "attempt": n, "started_at": at, "team": team, "key_name": key,
                "model_group": "chat", "vendor": vendor, "deployment": deployment, "input_tokens": tokens[0],
                "output_tokens": tokens[1], "list_cost_usd": billed * 1.25, "billed_cost_usd": billed,
                "effective_cost_usd": billed, "commitment": commitment, **more}

    return [
        rec("r1", 0, "search", "k1", "aws", "claude", 0.105),  # the request record: never summed
        rec("r1", 1, "search", "k1", "azure", "gpt-east", 0.0, status="failed", tokens=(0, 0)),
        rec("r1", 2, "search", "k1", "aws", "claude", 0.105),
        rec("r2", 1, "search", "k2", "aws", "claude", 0.005),
        rec("r3", 1, "ads", "k3", "azure", "ptu-east", 0.0, commitment="azure-ptu"),
        rec("old", 1, "ads", "k3", "aws", "claude", 99.0, at=T0 - 8 * 86400),  # before the window
    ]


def test_spend_by_team_and_vendor(ledger_store):
    insert(ledger_store, *records())
    rows = spend(ledger_store, (RESERVED,), ("team", "vendor"), T0 - 7 * 86400, T0 + 3600)
    by = {(r["team"], r["vendor"]): r for r in rows}
    assert set(by) == {("search", "aws"), ("search", "azure"), ("ads", "azure")}
    assert by[("search", "aws")]["requests"] == 2 and round(by[("search", "aws")]["billed_usd"], 6) == 0.11
    assert by[("search", "azure")]["attempts"] == 1 and by[("search", "azure")]["billed_usd"] == 0
    ptu = by[("ads", "azure")]
    assert ptu["billed_usd"] == 0 and round(ptu["effective_usd"], 6) == 180.0  # alone in its hour: amortised
    assert rows[0]["team"] == "search" and rows[0]["vendor"] == "aws"  # dearest billed first
    total = totals(ledger_store, T0 - 7 * 86400, T0 + 3600)
    assert total["requests"] == 3 and total["attempts"] == 4  # r1 counted once, though in two rows
    body = as_json(rows, total, ("team", "vendor"), T0 - 7 * 86400, T0 + 3600)
    assert body["total"]["billed_usd"] == "0.11" and body["total"]["effective_usd"] == "180.11"
    assert body["since"] == "2026-02-23T09:00:00Z"
    table = render(rows, ("team", "vendor"), total)
    assert "search" in table and "180.11" in table and table.splitlines()[-1].startswith("total")


def test_spend_by_key_and_deployment_and_an_empty_window(ledger_store):
    insert(ledger_store, *records())
    rows = spend(ledger_store, (), ("key", "deployment"), T0, T0 + 60)
    assert {(r["key"], r["deployment"]) for r in rows} == {("k1", "gpt-east"), ("k1", "claude"), ("k2", "claude"),
                                                           ("k3", "ptu-east")}
    assert spend(ledger_store, (), ("team",), T0 + 3600, T0 + 7200) == []


def test_report_arguments_are_checked():
    now = T0
    assert parse_time("7d", now) == now - 7 * 86400 and parse_time("90m", now) == now - 5400
    assert parse_time("2026-03-02", now) == datetime.datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    assert parse_time("2026-03-02T09:00:00Z", now) == T0
    assert parse_dimensions("team, vendor,team") == ("team", "vendor")
    with pytest.raises(ReportError, match="choose among team, vendor"):
        parse_dimensions("team,colour")
    with pytest.raises(ReportError, match="cannot read the time 'last tuesday'"):
        parse_time("last tuesday", now)


def test_a_report_on_a_database_never_written_creates_no_file(tmp_path):
    from skyrelay.ledger.store import LedgerStore

    path = tmp_path / "nothing-yet.db"
    with LedgerStore.from_url(f"sqlite:///{path}", create=False) as store:
        assert spend(store, (), ("team",), T0, T0 + 60) == []
    assert not path.exists()


def test_a_report_racing_the_shipper_to_create_the_table_still_reads(ledger_url):
    """Two connections creating the table at once (PostgreSQL can refuse the second): both end up reading it."""
    import threading

    from skyrelay.ledger.store import LedgerStore

    stores = [LedgerStore.from_url(ledger_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    failures = []

    def open_one(store):
        barrier.wait()
        try:
            store.rows("SELECT COUNT(*) FROM {t}")
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=open_one, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert failures == []
