"""The ledger's reports through the running gateway (GET /admin/spend, GET /admin/commitments) and the CLI
(`skyrelay spend | commitments | export focus`), over the same database, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import importlib.util
import json
import socket
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from skyrelay.ledger.store import LedgerStore
from skyrelay.server.openapi_routes import load_document

from tests.support.ledger_tables import insert, ledger_url  # noqa: F401  (fixture)

from .harness import GATEWAY_KEY, HELLO

LEDGER_CORE = importlib.util.find_spec("skyrelay.ledger.spool") is not None  # the write-ahead spool is in this tree
NOW = time.time()
HOUR_START = NOW - NOW % 3600


def commitments() -> list[dict]:
    return [{"name": "ptu-a", "kind": "reserved", "vendor": "openai", "deployments": ["cloud-a"],
             "cost_per_hour": 36.0, "start": "2026-01-01", "end": "2099-01-01"},
            {"name": "openai-commit", "kind": "spend", "vendor": "openai", "deployments": ["cloud-b"],
             "amount_usd": 1000, "discount": 0.1, "start": "2026-01-01", "end": "2099-01-01"}]


KEYS = [{"name": "bot", "key": "sk-bot", "team": "search"}, {"name": "boss", "key": "sk-boss", "role": "admin"}]


def records() -> list[dict]:
    at = HOUR_START + 1
    base = {"team": "search", "key_name": "bot", "model_group": "chat", "vendor": "openai"}
    return [
        {**base, "request_id": "r1", "attempt": 0, "started_at": at, "deployment": "cloud-a", "input_tokens": 900,
         "output_tokens": 100},
        {**base, "request_id": "r1", "attempt": 1, "started_at": at, "deployment": "cloud-a", "input_tokens": 900,
         "output_tokens": 100, "list_cost_usd": 0.01, "commitment": "ptu-a"},
        {**base, "request_id": "r2", "attempt": 1, "started_at": at, "deployment": "cloud-b", "team": "ads",
         "input_tokens": 1000, "output_tokens": 0, "list_cost_usd": 0.25, "billed_cost_usd": 0.225,
         "effective_cost_usd": 0.225, "commitment": "openai-commit"},
    ]


@pytest.fixture
def ledgered(make_stack, ledger_url, tmp_path):  # noqa: F811
    sections = {"database": {"url": ledger_url}, "commitments": commitments(), "teams": {"search": {}, "ads": {}},
                "keys": KEYS}
    if LEDGER_CORE:  # the gateway's own spool, in the test's directory
        sections["ledger"] = {"spool_dir": str(tmp_path / "spool")}
    stack = make_stack(sections=sections)
    with LedgerStore.from_url(ledger_url) as store:
        insert(store, *records())
    return stack, ledger_url


def get(stack, path: str, key: str | None = GATEWAY_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{stack.origin}{path}", headers=headers, timeout=10)


def test_admin_spend_and_commitments(ledgered):
    stack, _ = ledgered
    resp = get(stack, "/admin/spend?by=team,deployment&since=1d")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    rows = {(r["team"], r["deployment"]): r for r in body["rows"]}
    assert rows[("ads", "cloud-b")]["billed_usd"] == "0.23" and rows[("ads", "cloud-b")]["requests"] == 1
    assert rows[("search", "cloud-a")]["billed_usd"] == "0.00"
    assert rows[("search", "cloud-a")]["effective_usd"] == "36.00"  # alone in its hour: the whole hour
    assert body["total"]["effective_usd"] == "36.23" and body["by"] == ["team", "deployment"]
    burn = {c["name"]: c for c in get(stack, "/admin/commitments", "sk-boss").json()["commitments"]}
    assert burn["ptu-a"]["tokens"] == 1000 and burn["ptu-a"]["hours_used"] == 1
    assert burn["ptu-a"]["bar"].startswith("[") and burn["openai-commit"]["consumed"] == pytest.approx(0.225)


def test_admin_answers_match_the_documented_schemas(ledgered):
    stack, _ = ledgered
    components = load_document()["components"]
    for path, name in (("/admin/spend?by=vendor,key,region", "SpendReport"), ("/admin/commitments",
                                                                               "CommitmentsReport")):
        body = get(stack, path).json()
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})
        assert not list(validator.iter_errors(body)), (path, body)


def test_admin_reports_refuse_clearly(ledgered):
    stack, _ = ledgered
    assert get(stack, "/admin/spend", key=None).status_code == 401
    denied = get(stack, "/admin/commitments", "sk-bot")
    assert denied.status_code == 403 and "role: admin" in denied.json()["error"]["message"]
    wrong = get(stack, "/admin/spend?by=colour")
    assert wrong.status_code == 400 and "choose among team" in wrong.json()["error"]["message"]
    extra = get(stack, "/admin/spend?group=team")
    assert extra.status_code == 400 and "unknown query parameter 'group'" in extra.json()["error"]["message"]
    when = get(stack, "/admin/spend?since=yesterday")
    assert when.status_code == 400 and "cannot read the time" in when.json()["error"]["message"]
    assert get(stack, "/admin/spend?since=1h&until=2h").status_code == 400  # ends before it starts


def cli(config_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skyrelay.cli", *args, "--config", str(config_path)],
                          capture_output=True, text=True, timeout=60)


def test_cli_reports_read_the_same_database(ledgered, tmp_path):
    stack, url = ledgered
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": url}, "commitments": commitments(),
        "model_groups": {"chat": {"deployments": [
            {"name": name, "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"}
            for name in ("cloud-a", "cloud-b")]}}}))
    spend = cli(config, "spend", "--by", "vendor", "--since", "2h", "--json")
    assert spend.returncode == 0, spend.stderr
    assert json.loads(spend.stdout)["total"]["billed_usd"] == "0.23"
    table = cli(config, "spend", "--by", "team,key")
    assert table.returncode == 0 and "search" in table.stdout and "36.23" in table.stdout.splitlines()[-1]
    burn = cli(config, "commitments")
    assert burn.returncode == 0 and "ptu-a (reserved" in burn.stdout and "openai-commit (spend" in burn.stdout
    out = tmp_path / "usage.csv"
    export = cli(config, "export", "focus", "--since", "1h", "-o", str(out))
    assert export.returncode == 0 and export.stdout.startswith("wrote ")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["ChargeCategory"] for r in rows} == {"Usage", "Purchase"}
    assert sum(float(r["BilledCost"]) for r in rows) == pytest.approx(0.225 + 36.0 * len(
        [r for r in rows if r["ChargeCategory"] == "Purchase"]))
    bad = cli(config, "spend", "--by", "colour")
    assert bad.returncode == 2 and "choose among" in bad.stderr and not bad.stdout


def test_a_database_down_is_a_503_that_says_so(make_stack, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sections = {"database": {"url": f"postgresql://postgres@127.0.0.1:{port}/test"}, "commitments": commitments()}
    if LEDGER_CORE:
        sections["ledger"] = {"spool_dir": str(tmp_path / "spool")}
    stack = make_stack(sections=sections)
    for path in ("/admin/spend", "/admin/commitments"):
        resp = get(stack, path)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "database_unavailable", resp.text
        assert str(port) not in resp.text  # the answer does not say where the database is
    assert stack.openai().chat.completions.create(model="chat", messages=HELLO).choices  # requests unaffected
