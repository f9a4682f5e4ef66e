"""Money end to end: the official SDK's requests through the gateway to emulated clouds, priced by the ledger as
they end, shipped to the database, then read back by GET /admin/spend and /admin/commitments, on SQLite and
PostgreSQL: a spend commitment's discount on top of the contracted rate, to the cent; reserved capacity billed at
zero and amortised over what it served."""

from __future__ import annotations

import importlib.util
import time
from decimal import Decimal

import httpx2 as httpx
import pytest

from skyrelay.ledger.money import cents

from tests.support.ledger_tables import ledger_url  # noqa: F401  (fixture)

from .harness import GATEWAY_KEY, HELLO, openai_deployment

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skyrelay.ledger.shipper") is None,
                                reason="the ledger's spool and shipper are not in this tree")

PAYGO = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "discount": 0.2}
RESERVED = {"input_per_mtok": 2.5, "output_per_mtok": 10.0}
COMMITMENTS = [
    {"name": "ptu-a", "kind": "reserved", "vendor": "openai", "deployments": ["cloud-a"], "cost_per_hour": 36.0,
     "start": "2026-01-01", "end": "2099-01-01"},
    {"name": "commit-b", "kind": "spend", "vendor": "openai", "deployments": ["cloud-b"], "amount_usd": 1000,
     "discount": 0.1, "start": "2026-01-01", "end": "2099-01-01"},
]


def two_groups(clouds):
    """`ptu` is served by cloud-a alone, `paygo` by cloud-b alone: which commitment applies is known."""
    return {"ptu": {"deployments": [openai_deployment("cloud-a", clouds["cloud-a"], price=RESERVED)]},
            "paygo": {"deployments": [openai_deployment("cloud-b", clouds["cloud-b"], price=PAYGO)]}}


def admin(stack, path: str) -> dict:
    resp = httpx.get(f"{stack.origin}{path}", headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_requests_are_priced_shipped_and_reported(make_stack, tmp_path, ledger_url):  # noqa: F811
    stack = make_stack(groups=two_groups, sections={
        "database": {"url": ledger_url}, "commitments": COMMITMENTS,
        "ledger": {"spool_dir": str(tmp_path / "spool"), "fsync_interval_ms": 50}})
    client = stack.openai()
    billed = Decimal(0)
    paygo_usage, ptu_tokens = [], 0
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="paygo", messages=HELLO)
        usage = raw.parse().usage
        paygo_usage.append(usage)
        billed += Decimal(raw.headers["x-skyrelay-cost-usd"])
        reserved = client.chat.completions.with_raw_response.create(model="ptu", messages=HELLO)
        ptu_tokens += reserved.parse().usage.total_tokens
        assert Decimal(reserved.headers["x-skyrelay-cost-usd"]) == 0  # already paid by the hour
    expected = sum((u.prompt_tokens * 3.0 + u.completion_tokens * 15.0) / 1e6 * 0.8 * 0.9 for u in paygo_usage)

    def report() -> dict:
        return {row["deployment"]: row for row in admin(stack, "/admin/spend?by=deployment&since=2h")["rows"]}

    rows = {}
    for _ in range(100):  # the shipper commits behind the requests
        rows = report()
        if sum(row["attempts"] for row in rows.values()) == 6:
            break
        time.sleep(0.1)
    paid = rows["cloud-b"]
    assert paid["requests"] == 3 and paid["billed_usd"] == str(cents(expected))
    assert cents(float(billed)) == cents(expected)  # the answers' cost headers add up to the ledger's billed
    assert Decimal(paid["list_usd_exact"]) > Decimal(paid["billed_usd_exact"])
    ptu = rows["cloud-a"]
    assert ptu["billed_usd"] == "0.00" and ptu["input_tokens"] + ptu["output_tokens"] == ptu_tokens
    assert Decimal(ptu["effective_usd"]) in {Decimal("36.00"), Decimal("72.00")}  # its hour (two, at :59)
    burn = {c["name"]: c for c in admin(stack, "/admin/commitments")["commitments"]}
    assert burn["ptu-a"]["tokens"] == ptu_tokens and burn["ptu-a"]["hours_used"] in {1, 2}
    assert cents(burn["commit-b"]["consumed"]) == cents(expected)
