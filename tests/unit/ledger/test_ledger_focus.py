"""The FOCUS export, checked against the FOCUS 1.2 rules written out here from the specification (not from the
exporter): column names, types, nullability, and the cross-column rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections import defaultdict
from decimal import Decimal

from skyrelay.config.model import Config, ModelGroup
from skyrelay.ledger.focus import export

from tests.support.ledger_tables import insert
from tests.unit.ledger.ledger_money_cases import CLAUDE, GPT, PTU, RESERVED, SPEND, UTC

DECIMAL, STRING, DATETIME, JSON = "decimal", "string", "datetime", "json"
# (column, type, nullable) for FOCUS 1.2's mandatory columns, 1.3's provider columns, and the conditional ones.
SPEC = [
    ("BilledCost", DECIMAL, False), ("EffectiveCost", DECIMAL, False), ("ListCost", DECIMAL, False),
    ("ContractedCost", DECIMAL, False), ("BillingAccountId", STRING, False), ("BillingCurrency", STRING, False),
    ("BillingPeriodStart", DATETIME, False), ("BillingPeriodEnd", DATETIME, False),
    ("ChargeCategory", STRING, False), ("ChargeClass", STRING, True), ("ChargeDescription", STRING, True),
    ("ChargePeriodStart", DATETIME, False), ("ChargePeriodEnd", DATETIME, False),
    ("InvoiceIssuerName", STRING, False), ("ProviderName", STRING, False), ("PublisherName", STRING, False),
    ("ServiceName", STRING, False), ("ServiceCategory", STRING, False), ("PricingQuantity", DECIMAL, True),
    ("PricingUnit", STRING, True), ("ServiceProviderName", STRING, False), ("HostProviderName", STRING, False),
    ("RegionId", STRING, True), ("ConsumedQuantity", DECIMAL, True), ("ConsumedUnit", STRING, True),
    ("CommitmentDiscountId", STRING, True), ("CommitmentDiscountName", STRING, True),
    ("CommitmentDiscountCategory", STRING, True), ("CommitmentDiscountStatus", STRING, True),
    ("CommitmentDiscountType", STRING, True), ("CommitmentDiscountQuantity", DECIMAL, True),
    ("CommitmentDiscountUnit", STRING, True), ("SkuId", STRING, True), ("Tags", JSON, True),
]
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")  # no symbol, no exponent, no thousands separator

H0 = datetime.datetime(2026, 1, 31, 22, tzinfo=UTC).timestamp()  # two hours before a billing period ends
HOUR = 3600.0
CONFIG = Config(model_groups={"chat": ModelGroup("chat", deployments=(GPT, CLAUDE, PTU))},
                commitments=(SPEND, RESERVED))


def attempt(rid, at, deployment, vendor, tokens, billed, *, commitment=None, n=1, **more):
    return {"request_id": rid, "attempt": n, "started_at": at, "deployment": deployment, "vendor": vendor,
            "team": "search", "key_name": "ci", "model_group": "chat", "region": "eastus",
            "input_tokens": tokens, "cached_tokens": tokens // 2, "output_tokens": tokens // 10,
            "list_cost_usd": billed * 2, "billed_cost_usd": billed, "effective_cost_usd": billed,
            "commitment": commitment, **more}


def exported(store, since=H0, until=H0 + 3 * HOUR, now=H0 + 3 * HOUR) -> list[dict[str, str | None]]:
    out = io.StringIO()
    count = export(store, CONFIG, since, until, out, now)
    text = out.getvalue()
    assert not re.search(r'(^|,)""(,|$)', text, re.M)  # a NULL is an empty unquoted field, never an empty string
    reader = csv.reader(io.StringIO(text))
    head = next(reader)
    rows = [{name: (value if value != "" else None) for name, value in zip(head, line)} for line in reader]
    assert len(rows) == count
    return head, rows


def check_row(row):
    for name, kind, nullable in SPEC:
        value = row[name]
        if value is None:
            assert nullable, f"{name} must not be null: {row}"
            continue
        if kind == DECIMAL:
            assert NUMBER.match(value), f"{name}={value!r} is not a plain decimal"
        elif kind == DATETIME:
            assert STAMP.match(value), f"{name}={value!r} is not YYYY-MM-DDTHH:mm:ssZ"
        elif kind == JSON:
            tags = json.loads(value)
            assert isinstance(tags, dict) and all(isinstance(v, (str, int, float, bool)) for v in tags.values())
    assert row["ChargeCategory"] in {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    assert row["ChargeClass"] is None  # nothing here corrects a closed billing period
    assert row["BillingCurrency"] == "USD" and row["ServiceCategory"] == "AI and Machine Learning"
    assert (row["PricingQuantity"] is None) == (row["PricingUnit"] is None)
    assert (row["ConsumedQuantity"] is None) == (row["ConsumedUnit"] is None)
    start, end = (datetime.datetime.fromisoformat(row[c].replace("Z", "+00:00"))
                  for c in ("ChargePeriodStart", "ChargePeriodEnd"))
    assert end - start == datetime.timedelta(hours=1)  # one row per hour, end exclusive
    billing = [datetime.datetime.fromisoformat(row[c].replace("Z", "+00:00"))
               for c in ("BillingPeriodStart", "BillingPeriodEnd")]
    assert billing[0] <= start and end <= billing[1] and billing[0].day == 1
    committed = row["CommitmentDiscountId"] is not None
    for column in ("CommitmentDiscountName", "CommitmentDiscountCategory", "CommitmentDiscountType"):
        assert (row[column] is not None) == committed
    assert row["CommitmentDiscountStatus"] is None or committed
    if committed and row["ChargeCategory"] in {"Usage", "Purchase"}:
        assert row["CommitmentDiscountQuantity"] is not None and row["CommitmentDiscountUnit"] is not None
    if not committed:
        assert row["CommitmentDiscountQuantity"] is None and row["CommitmentDiscountUnit"] is None
    if committed and row["ChargeCategory"] == "Usage":
        assert row["CommitmentDiscountStatus"] in {"Used", "Unused"}
        assert row["CommitmentDiscountCategory"] in {"Spend", "Usage"}
    if row["ChargeCategory"] == "Purchase":
        assert row["EffectiveCost"] == "0" and row["ConsumedQuantity"] is None
    if row["CommitmentDiscountStatus"] == "Unused":
        assert row["ConsumedQuantity"] is None and row["BilledCost"] == "0"
    if row["ChargeCategory"] in {"Usage", "Purchase"}:
        assert row["PricingQuantity"] is not None
    if row["ChargeCategory"] == "Usage" and row["CommitmentDiscountStatus"] != "Unused":
        assert row["ConsumedQuantity"] is not None
    assert row["ChargeFrequency"] in {"One-Time", "Recurring", "Usage-Based"}
    if row["ChargeCategory"] in {"Usage", "Purchase"}:
        assert row["PricingCategory"] in {"Standard", "Dynamic", "Committed", "Other"}
        # Committed: reduced by a commitment discount, and not the purchase of it.
        assert (row["PricingCategory"] == "Committed") == (committed and row["ChargeCategory"] == "Usage")
    if not committed:  # neither covering nor covered: effective is what was billed
        assert row["EffectiveCost"] == row["BilledCost"]


def test_focus_export_follows_the_rules(ledger_store):
    insert(ledger_store,
           attempt("a", H0 + 60, "gpt", "openai", 1000, 0.0125),
           attempt("a", H0 + 60, "gpt", "openai", 1000, 0.0125, n=0),  # the request record: not a charge
           attempt("b", H0 + 120, "claude", "aws", 2000, 0.972, commitment="aws-commit"),
           attempt("c", H0 + 300, "ptu-east", "azure", 3000, 0.0, commitment="azure-ptu", list_cost_usd=0.0105),
           attempt("d", H0 + 400, "ptu-east", "azure", 1000, 0.0, commitment="azure-ptu", region="",
                   list_cost_usd=0.0035),
           attempt("e", H0 + HOUR + 5, "gpt", "openai", 0, 0.0, status="failed"),  # used nothing: no row
           attempt("f", H0 + 2 * HOUR + 5, "ptu-east", "azure", 500, 0.0, commitment="azure-ptu", team=None))
    head, rows = exported(ledger_store)
    assert set(name for name, _, _ in SPEC) <= set(head)
    for row in rows:
        check_row(row)
    kinds = defaultdict(list)
    for row in rows:
        kinds[(row["ChargeCategory"], row["CommitmentDiscountStatus"])].append(row)
    assert len(kinds[("Purchase", None)]) == 3  # every hour of the reserved capacity is paid
    assert len(kinds[("Usage", "Unused")]) == 1  # hour 2 served nothing on it
    assert kinds[("Usage", "Unused")][0]["ChargePeriodStart"] == "2026-01-31T23:00:00Z"
    # Per commitment, the usage's effective cost is what its purchases billed (FOCUS's amortisation rule).
    usage = sum(Decimal(r["EffectiveCost"]) for r in rows
                if r["CommitmentDiscountId"] == "azure-ptu" and r["ChargeCategory"] == "Usage")
    bought = sum(Decimal(r["BilledCost"]) for r in rows if r["ChargeCategory"] == "Purchase")
    assert abs(usage - bought) < Decimal("0.000001") and bought == Decimal("540")
    # Per hour, the quantity used and unused is the quantity bought (one hour of capacity).
    quantity = defaultdict(Decimal)
    for r in rows:
        if r["CommitmentDiscountId"] and r["ChargeCategory"] == "Usage":
            quantity[r["ChargePeriodStart"]] += Decimal(r["CommitmentDiscountQuantity"])
    assert len(quantity) == 3 and all(abs(q - 1) < Decimal("1e-9") for q in quantity.values())
    used = [r for r in kinds[("Usage", "Used")] if r["ChargePeriodStart"] == "2026-01-31T22:00:00Z"]
    assert sorted(Decimal(r["EffectiveCost"]) for r in used) == [Decimal(45), Decimal(135)]  # by tokens 1:3
    assert all(r["BilledCost"] == "0" and r["ContractedCost"] != "0" for r in used)
    on_demand = next(r for r in rows if r["SkuId"] == "openai:model-gpt")
    assert on_demand["BilledCost"] == "0.0125" and on_demand["ConsumedQuantity"] == "1100"
    assert json.loads(on_demand["Tags"]) == {"team": "search", "key": "ci", "model_group": "chat",
                                             "deployment": "gpt"}
    spend = next(r for r in rows if r["SkuId"] == "aws:model-claude")
    assert spend["CommitmentDiscountId"] is None and json.loads(spend["Tags"])["commitment"] == "aws-commit"
    assert spend["ProviderName"] == "Amazon Web Services" and spend["ServiceName"] == "Amazon Bedrock"
    # The hour from midnight on is February's.
    periods = {(r["ChargePeriodStart"][:7], r["BillingPeriodStart"]) for r in rows}
    assert periods == {("2026-01", "2026-01-01T00:00:00Z"), ("2026-02", "2026-02-01T00:00:00Z")}
    assert {r["x_Requests"] for r in rows if r["ChargeCategory"] == "Usage" and r["x_Requests"]} == {"1"}


def test_hours_not_begun_are_not_paid_and_an_empty_window_has_only_its_header(ledger_store):
    _, rows = exported(ledger_store, now=H0 + 1.5 * HOUR)
    assert [r["ChargeCategory"] for r in rows] == ["Purchase", "Usage", "Purchase", "Usage"]  # 2 idle hours
    before = datetime.datetime(2025, 6, 1, tzinfo=UTC).timestamp()  # before every commitment
    head, rows = exported(ledger_store, since=before, until=before + HOUR, now=before + HOUR)
    assert rows == [] and head[0] == "BilledCost"
