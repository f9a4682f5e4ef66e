"""Reserved capacity amortised over what it served, hour by hour, and every commitment's burn-down: on SQLite and
on PostgreSQL, with records written straight into the ledger table."""

from __future__ import annotations

import datetime

from skyrelay.ledger.commitments import amortise, burn_down, render
from skyrelay.ledger.money import cents

from tests.support.ledger_tables import insert
from tests.unit.ledger.ledger_money_cases import RESERVED, SPEND, UTC

H0 = datetime.datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # the reserved term's first hour
HOUR = 3600.0


def attempt(request_id: str, at: float, tokens: int, n: int = 1, commitment: str = "azure-ptu", **more) -> dict:
    return {"request_id": request_id, "attempt": n, "started_at": at, "deployment": "ptu-east", "vendor": "azure",
            "input_tokens": tokens - tokens // 4, "output_tokens": tokens // 4, "commitment": commitment, **more}


def request(request_id: str, at: float) -> dict:
    return {"request_id": request_id, "attempt": 0, "started_at": at, "commitment": "azure-ptu"}


def effective(store) -> dict[tuple[str, int], str]:
    rows = store.rows("SELECT request_id, attempt, effective_cost_usd FROM {t}")
    return {(r, a): str(cents(e)) for r, a, e in rows}


def test_an_hour_is_shared_by_tokens_and_requests_sum_their_attempts(ledger_store):
    insert(ledger_store,
           request("a", H0 + 10), attempt("a", H0 + 10, 1000), attempt("a", H0 + 11, 2000, n=2, hedged=1),
           request("b", H0 + 600), attempt("b", H0 + 600, 3000),
           request("c", H0 + HOUR + 5), attempt("c", H0 + HOUR + 5, 500),
           attempt("x", H0 + 20, 9000, status="open", commitment="azure-ptu"),  # still open: not counted
           attempt("y", H0 + 30, 4000, commitment=None))  # on demand: not the commitment's
    assert amortise(ledger_store, (RESERVED, SPEND), H0, H0 + 3 * HOUR) == 7  # 4 attempts, 3 requests
    costs = effective(ledger_store)
    assert costs[("a", 1)] == "30.00" and costs[("a", 2)] == "60.00" and costs[("b", 1)] == "90.00"
    assert costs[("a", 0)] == "90.00" and costs[("b", 0)] == "90.00"
    assert costs[("c", 1)] == "180.00" and costs[("c", 0)] == "180.00"  # alone in its hour: the whole hour
    assert costs[("x", 1)] == "0.00" and costs[("y", 1)] == "0.00"
    assert amortise(ledger_store, (RESERVED,), H0, H0 + 3 * HOUR) == 0  # idempotent: nothing left to change


def test_a_record_shipped_late_reprices_its_hour(ledger_store):
    insert(ledger_store, request("a", H0), attempt("a", H0, 6000))
    amortise(ledger_store, (RESERVED,), H0, H0 + HOUR)
    assert effective(ledger_store)[("a", 1)] == "180.00"
    insert(ledger_store, request("late", H0 + 1800), attempt("late", H0 + 1800, 3000))
    amortise(ledger_store, (RESERVED,), H0 + 1800, H0 + 1801)
    costs = effective(ledger_store)
    assert (costs[("a", 1)], costs[("late", 1)], costs[("late", 0)]) == ("120.00", "60.00", "60.00")


def test_a_request_record_shipped_after_its_attempts_still_gets_their_sum(ledger_store):
    insert(ledger_store, attempt("a", H0, 6000))
    amortise(ledger_store, (RESERVED,), H0, H0 + HOUR)
    insert(ledger_store, request("a", H0))  # the request record closes last, and ships later
    assert amortise(ledger_store, (RESERVED,), H0, H0 + HOUR) == 1
    assert effective(ledger_store)[("a", 0)] == "180.00"


def test_reserved_burn_down(ledger_store):
    insert(ledger_store, attempt("a", H0 + 10, 6000, list_cost_usd=0.03),
           attempt("b", H0 + HOUR + 10, 4000, list_cost_usd=0.02))
    now = H0 + 10 * HOUR  # ten hours paid, two of them used
    (burn,) = burn_down(ledger_store, (RESERVED,), now)
    assert (burn.hours_paid, burn.hours_used, burn.tokens) == (10, 2, 10_000)
    assert str(cents(burn.consumed)) == "1800.00" and str(cents(burn.shortfall)) == "1440.00"  # 8 idle hours
    assert burn.utilisation == 0.2 and str(cents(burn.effective_per_mtok)) == "180000.00"
    assert str(cents(burn.amount)) == str(cents(365 * 24 * 180.0)) and str(cents(burn.list_value)) == "0.05"
    text = render([burn])
    assert "10 hours paid, 2 used (20.0%)" in text and "$1,800.00" in text


def test_spend_burn_down_projects_the_end(ledger_store):
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    ten_days = SPEND.__class__(SPEND.name, "spend", "aws", ("claude",), SPEND.start, datetime.date(2026, 1, 11),
                               amount_usd=1000, discount=0.1)
    insert(ledger_store, *[
        {"request_id": f"d{day}", "started_at": start + day * 86400 + 43200, "deployment": "claude",
         "vendor": "aws", "billed_cost_usd": 50.0, "list_cost_usd": 69.44, "commitment": "aws-commit"}
        for day in range(5)])
    (burn,) = burn_down(ledger_store, (ten_days,), start + 5 * 86400)
    assert str(cents(burn.consumed)) == "250.00" and str(cents(burn.last_day)) == "50.00"
    assert str(cents(burn.per_day_7d)) == "50.00" and str(cents(burn.projected)) == "500.00"
    assert str(cents(burn.shortfall)) == "500.00" and burn.overrun == 0 and burn.elapsed == 0.5
    assert burn.bar(10) == "[###..|.....]"
    assert "shortfall $500.00" in render([burn])
