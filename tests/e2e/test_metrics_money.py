"""The cost counters carry the ledger's figures: after traffic through a discounted deployment under a spend
commitment (and one whose reserved capacity bills zero), /metrics' billed and list cost equal what the ledger
shipped to the database for the same requests, to the cent (and to its ten decimal places)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from skyrelay.ledger.money import cents

from .test_ledger_money import COMMITMENTS, admin, two_groups
from .test_telemetry import HELLO, samples, scrape


def test_cost_metrics_equal_the_ledgers_billed_and_list_sums(make_stack, tmp_path):
    stack = make_stack(groups=two_groups, sections={
        "commitments": COMMITMENTS, "teams": {"research": {}},
        "keys": [{"name": "lab", "key": "sk-lab-0123456789", "team": "research"}],
        "ledger": {"spool_dir": str(tmp_path / "spool"), "fsync_interval_ms": 50},
        "database": {"url": f"sqlite:///{tmp_path}/ledger.db"}})
    client, lab = stack.openai(), stack.openai(api_key="sk-lab-0123456789")
    for sender in (client, lab, client):
        sender.chat.completions.create(model="paygo", messages=HELLO)
        sender.chat.completions.create(model="ptu", messages=HELLO)
    with client.chat.completions.create(model="paygo", messages=HELLO, stream=True,
                                        stream_options={"include_usage": True}) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    rows = {}
    for _ in range(100):  # the shipper commits behind the requests
        rows = {row["deployment"]: row for row in admin(stack, "/admin/spend?by=deployment&since=2h")["rows"]}
        if sum(row["requests"] for row in rows.values()) == 7:
            break
        time.sleep(0.1)
    got = samples(scrape(stack).text)
    for group, name in (("paygo", "cloud-b"), ("ptu", "cloud-a")):
        labels = f'{{model_group="{group}",deployment="{name}"}}'
        billed, listed = got[f"skyrelay_cost_usd_total{labels}"], got[f"skyrelay_list_cost_usd_total{labels}"]
        assert cents(billed) == Decimal(rows[name]["billed_usd"])
        assert billed == pytest.approx(float(rows[name]["billed_usd_exact"]), abs=1e-9)
        assert listed == pytest.approx(float(rows[name]["list_usd_exact"]), abs=1e-9)
    assert got['skyrelay_cost_usd_total{model_group="ptu",deployment="cloud-a"}'] == 0  # paid by the hour
    assert 0 < got['skyrelay_cost_usd_total{model_group="paygo",deployment="cloud-b"}'] < \
        got['skyrelay_list_cost_usd_total{model_group="paygo",deployment="cloud-b"}'] * 0.8 * 0.9 + 1e-12
    billed = got['skyrelay_cost_usd_total{model_group="paygo",deployment="cloud-b"}']
    team = got['skyrelay_team_cost_usd_total{team="research",model_group="paygo"}']
    assert 0 < team < billed  # the lab key's one paygo request of the four
