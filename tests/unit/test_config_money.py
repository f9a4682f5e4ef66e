"""The database: and commitments: sections, and the price keys the ledger reads."""

from __future__ import annotations

import datetime

from skyrelay.config import parse_config
from skyrelay.db import parse_url

from tests.unit.test_config import assert_problem, base, problems_of


def test_database_and_commitments_are_read():
    data = base()
    data["database"] = {"url": "postgresql://postgres@127.0.0.1/test"}
    data["model_groups"]["chat"]["deployments"][0]["price"] = {
        "input_per_mtok": 2.5, "output_per_mtok": 10, "cached_input_per_mtok": 0.25, "cache_write_per_mtok": 3.125,
        "discount": 0.1}
    data["commitments"] = [
        {"name": "ptu", "kind": "reserved", "vendor": "openai", "deployments": ["a"], "cost_per_hour": 180,
         "start": datetime.date(2026, 1, 1), "end": "2027-01-01"},
        {"name": "spend", "kind": "spend", "vendor": "openai", "amount_usd": 1000, "discount": 0.1,
         "start": "2026-01-01", "end": "2029-01-01"}]
    config = parse_config(data)
    assert parse_url(config.database.url).dialect == "postgresql"
    price = config.model_groups["chat"].deployments[0].price
    assert (price.cache_write_per_mtok, price.discount) == (3.125, 0.1)
    reserved, spend = config.commitments
    assert reserved.deployments == ("a",) and reserved.cost_per_hour == 180
    assert reserved.start == datetime.date(2026, 1, 1) and reserved.end == datetime.date(2027, 1, 1)
    assert set(spend.deployments) == {d.name for d in config.deployments()}  # no list: every one of the vendor's
    assert "postgres@" not in repr(config.database)


def test_database_defaults_to_embedded_sqlite():
    config = parse_config(base()).database
    database = parse_url(config.url)
    assert database.dialect == "sqlite" and database.target.endswith("skyrelay.db")
    assert config.responses_retention_days == 30  # as long as OpenAI keeps them


def test_the_responses_retention_is_read_and_checked():
    data = base()
    data["database"] = {"responses_retention_days": 0.5}
    assert parse_config(data).database.responses_retention_days == 0.5
    data["database"] = {"responses_retention_days": 0}
    assert_problem(problems_of(data), "database.responses_retention_days", "must be > 0")


def test_commitment_mistakes_are_named():
    data = base()
    data["database"] = {"url": "mysql://x"}
    data["commitments"] = [
        {"name": "x", "kind": "reserved", "vendor": "openai", "deployments": ["nope"], "start": "2026-01-01",
         "end": "2025-01-01", "discount": 0.1},
        {"name": "y", "kind": "lease", "vendor": "openai", "start": "soon", "end": "2027-01-01"},
        {"name": "z", "kind": "spend", "vendor": "azure", "deployments": ["a"], "amount_usd": -1,
         "start": "2026-01-01", "end": "2027-01-01"}]
    problems = problems_of(data)
    assert_problem(problems, "database.url", "sqlite:///path")
    assert_problem(problems, "commitments[0].deployments[0]", "no deployment is named 'nope'")
    assert_problem(problems, "commitments[0].cost_per_hour", "required")
    assert_problem(problems, "commitments[0].end", "after start")
    assert_problem(problems, "commitments[0].discount", "only used by kind: spend")
    assert_problem(problems, "commitments[1].kind", "unknown kind")
    assert_problem(problems, "commitments[1].start", "expected a date")
    assert_problem(problems, "commitments[2].deployments[0]", "paid to 'openai'")
    assert_problem(problems, "commitments[2].amount_usd", ">= 0")


def test_the_ledger_section_is_read_and_its_mistakes_named():
    data = base()
    data["ledger"] = {"spool_dir": "/var/lib/skyrelay/spool", "fsync_interval_ms": 50, "max_spool_bytes": 1 << 24,
                      "segment_bytes": 1 << 20, "enabled": True}
    ledger = parse_config(data).ledger
    assert (ledger.spool_dir, ledger.fsync_interval_ms, ledger.max_spool_bytes, ledger.segment_bytes) == (
        "/var/lib/skyrelay/spool", 50, 1 << 24, 1 << 20)
    assert parse_config(base()).ledger.enabled and parse_config(base()).ledger.fsync_interval_ms == 200
    data["ledger"] = {"fsync_interval_ms": 0, "segment_bytes": 10, "spool": "x", "enabled": "yes please"}
    problems = problems_of(data)
    assert_problem(problems, "ledger.fsync_interval_ms", "")
    assert_problem(problems, "ledger.segment_bytes", "")
    assert_problem(problems, "ledger.spool", "unknown")
    assert_problem(problems, "ledger.enabled", "")
