"""record_costs to the cent: list prices with cache reads and writes apart, the contracted discount, a spend
commitment's discount when it is active, and reserved capacity billed at zero marginal cost."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from skyrelay.canonical import Usage
from skyrelay.ledger.money import cents, record_costs

from tests.unit.ledger.ledger_money_cases import (CHEAP, CLAUDE, COMMITMENTS, GPT, PLAIN, PTU, SPEND, UTC,
                                                   Commitment, deployment)

CLAUDE_CACHED = deployment("claude", "bedrock", input_per_mtok=3, output_per_mtok=15, cached_input_per_mtok=0.3,
                           cache_write_per_mtok=3.75, discount=0.2)
IN_TERM = datetime.datetime(2026, 6, 1, 12, tzinfo=UTC)
BEFORE = datetime.datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)

CASES = [
    # (case, deployment, usage (input, output, cached, cache_write), when, list, billed, effective, commitment)
    ("on demand", GPT, (1_000_000, 100_000, 0, 0), IN_TERM, "3.50", "3.50", "3.50", None),
    ("cache read and write priced apart", GPT, (1_000_000, 0, 400_000, 100_000), IN_TERM,
     "2.06", "2.06", "2.06", None),  # 500k x 2.5 + 400k x 1.25 + 100k x 3.125 = 2.0625
    ("no cache price: full input price", PLAIN, (1_000_000, 0, 400_000, 100_000), IN_TERM,
     "2.50", "2.50", "2.50", None),
    ("contracted discount, commitment not begun", CLAUDE, (200_000, 50_000, 0, 0), BEFORE,
     "1.35", "1.08", "1.08", None),
    ("spend commitment on top of the contracted rate", CLAUDE, (200_000, 50_000, 0, 0), IN_TERM,
     "1.35", "0.97", "0.97", "aws-commit"),  # 1.35 x 0.8 x 0.9 = 0.972
    ("reserved capacity: zero marginal, amortised later", PTU, (1_000_000, 100_000, 0, 0), IN_TERM,
     "3.50", "0.00", "0.00", "azure-ptu"),
    ("reserved capacity outside its term", PTU, (1_000_000, 100_000, 0, 0), BEFORE, "3.50", "3.50", "3.50", None),
    ("half a cent rounds up", CHEAP, (5_000, 0, 0, 0), IN_TERM, "0.01", "0.01", "0.01", None),
    ("1.5 cents rounds up, not to the binary 0.01499...", CHEAP, (15_000, 0, 0, 0), IN_TERM,
     "0.02", "0.02", "0.02", None),
    ("docs/ledger.md's worked example", CLAUDE_CACHED, (200_000, 50_000, 100_000, 0), IN_TERM,
     "1.08", "0.78", "0.78", "aws-commit"),  # 1.08 x 0.8 x 0.9 = 0.7776
    ("epoch seconds work as well", CLAUDE, (200_000, 50_000, 0, 0), IN_TERM.timestamp(),
     "1.35", "0.97", "0.97", "aws-commit"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_record_costs_to_the_cent(case):
    _, deployment, tokens, when, listed, billed, effective, commitment = case
    usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1], cached_tokens=tokens[2],
                  cache_write_tokens=tokens[3])
    got = record_costs(deployment, usage, when, COMMITMENTS)
    assert [str(cents(v)) for v in got[:3]] == [listed, billed, effective]
    assert got[3] == commitment


def test_a_reserved_commitment_wins_over_a_spend_one_on_the_same_deployment():
    spend_too = Commitment("azure-macc", "spend", "azure", ("ptu-east",), SPEND.start, SPEND.end, amount_usd=10,
                           discount=0.5)
    usage = Usage(input_tokens=1000, output_tokens=10)
    assert record_costs(PTU, usage, IN_TERM, (spend_too, *COMMITMENTS))[3] == "azure-ptu"


def test_the_term_ends_exclusive_at_midnight_utc():
    end = datetime.datetime(2027, 1, 1, tzinfo=UTC)
    usage = Usage(input_tokens=1000)
    assert record_costs(PTU, usage, end - datetime.timedelta(seconds=1), COMMITMENTS)[3] == "azure-ptu"
    assert record_costs(PTU, usage, end, COMMITMENTS)[3] is None


def test_amounts_add_up_to_the_cent_over_many_records():
    one = record_costs(CLAUDE, Usage(input_tokens=333, output_tokens=77), IN_TERM, COMMITMENTS)
    total = sum(Decimal(repr(one[1])) for _ in range(100_000))
    # 333 x 3 + 77 x 15 = 2154 micro-dollars list; x 0.8 x 0.9 = 1550.88 micro-dollars billed, each time
    assert cents(float(total)) == Decimal("155.09")
