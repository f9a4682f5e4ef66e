"""The ledger through the official SDK, on SQLite and on PostgreSQL: one record per client request and one per
attempt that reached a cloud, with its tokens and costs; `x-skyrelay-cost-usd` on whole answers; a database
outage that requests never notice and the ledger recovers from, losing and doubling nothing."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx2 as httpx
import pytest

from .harness import HELLO, openai_deployment
from tests.support.ledger_rows import by_key, wait_for_rows
from tests.support.postgres_service import ledger_database_url, needs_pg_binaries, own_postgres  # noqa: F401

PRICE = {"input_per_mtok": 2.5, "output_per_mtok": 10.0, "discount": 0.2}


def tiered(clouds):
    """cloud-a first, cloud-b when it fails: which cloud serves is known in advance."""
    return {"chat": {"max_attempts": 2, "deployments": [
        openai_deployment("cloud-a", clouds["cloud-a"], price=PRICE, tier=0),
        openai_deployment("cloud-b", clouds["cloud-b"], price=PRICE, tier=1)]}}


def ledger_stack(make_stack, tmp_path, url: str):
    return make_stack(groups=tiered, sections={
        "database": {"url": url},
        "ledger": {"spool_dir": str(tmp_path / "spool"), "segment_bytes": 64 << 10, "fsync_interval_ms": 50}})


def cloud_calls(stack) -> int:
    return sum(cloud.stats["by_path"].get("POST /v1/chat/completions", 0) for cloud in stack.clouds.values())


def test_each_request_and_each_attempt_that_reached_a_cloud_has_one_record(make_stack, tmp_path, ledger_database_url):
    stack = ledger_stack(make_stack, tmp_path, ledger_database_url)
    stack.set_faults("cloud-a", [{"status": 500, "at": [2]}])
    client = stack.openai()
    whole = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    failed_over = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    with client.chat.completions.with_streaming_response.create(model="chat", messages=HELLO, stream=True) as raw:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        streamed = raw.headers["x-request-id"]
        assert "x-skyrelay-cost-usd" not in raw.headers  # unknown when the headers go (docs/ledger.md)
    ids = [whole.headers["x-request-id"], failed_over.headers["x-request-id"], streamed]

    rows = wait_for_rows(ledger_database_url, lambda rows: len(rows) >= 7)
    records = by_key(rows)
    assert len(rows) == len(records) == 7  # 3 requests, 4 attempts
    assert sum(1 for row in rows if row["attempt"] > 0) == cloud_calls(stack) == 4

    first = records[(ids[0], 1)]
    assert (first["deployment"], first["status"], first["estimated"]) == ("cloud-a", "ok", 0)
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0
    listed = (first["input_tokens"] * 2.5 + first["output_tokens"] * 10.0) / 1e6
    assert first["list_cost_usd"] == pytest.approx(listed) and first["billed_cost_usd"] == pytest.approx(listed * 0.8)

    failure, success = records[(ids[1], 1)], records[(ids[1], 2)]
    assert (failure["deployment"], failure["status"], failure["error_kind"]) == ("cloud-a", "failed",
                                                                                 "UpstreamUnavailable")
    assert failure["input_tokens"] == failure["output_tokens"] == 0 and failure["billed_cost_usd"] == 0
    assert (success["deployment"], success["status"]) == ("cloud-b", "ok")
    request = records[(ids[1], 0)]
    assert (request["status"], request["http_status"], request["deployment"], request["model_group"]) == (
        "ok", 200, "cloud-b", "chat")
    assert request["output_tokens"] == success["output_tokens"]
    assert request["billed_cost_usd"] == pytest.approx(success["billed_cost_usd"])

    stream = records[(streamed, 0)]
    assert stream["streamed"] == 1 and stream["ttft_ms"] is not None and stream["output_tokens"] > 0

    metrics = httpx.get(f"{stack.origin}/metrics", headers={"authorization": f"Bearer {stack.key}"}).text
    assert "skyrelay_ledger_database_up 1" in metrics and "skyrelay_ledger_records_shipped_total 7" in metrics

    for raw, rid in ((whole, ids[0]), (failed_over, ids[1])):  # the whole answer's header is the billed cost
        assert float(raw.headers["x-skyrelay-cost-usd"]) == pytest.approx(records[(rid, 0)]["billed_cost_usd"],
                                                                          abs=1e-8)


def test_a_finished_chat_stream_ends_with_its_cost_in_an_sse_comment(make_stack, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    stack = ledger_stack(make_stack, tmp_path, url)
    body = {"model": "chat", "messages": HELLO, "stream": True}
    reply = httpx.post(f"{stack.base_url}/chat/completions", json=body, timeout=20,
                       headers={"authorization": f"Bearer {stack.key}"})
    *_, comment, done = [event for event in reply.text.split("\n\n") if event]
    assert done == "data: [DONE]" and comment.startswith(": x-skyrelay-cost-usd ")
    rid = reply.headers["x-request-id"]
    record = by_key(wait_for_rows(url, lambda rows: (rid, 0) in by_key(rows)))[(rid, 0)]
    assert float(comment.split()[-1]) == pytest.approx(record["billed_cost_usd"], abs=1e-8) and record["streamed"]


def test_a_request_no_cloud_could_serve_is_recorded_with_its_status(make_stack, tmp_path, ledger_database_url):
    stack = ledger_stack(make_stack, tmp_path, ledger_database_url)
    for cloud in ("cloud-a", "cloud-b"):
        stack.set_faults(cloud, [{"status": 503, "rate": 1.0}])
    client = stack.openai()
    with pytest.raises(Exception) as raised:
        client.chat.completions.create(model="chat", messages=HELLO)
    rid = raised.value.response.headers["x-request-id"]
    rows = wait_for_rows(ledger_database_url, lambda rows: (rid, 0) in by_key(rows))
    records = by_key(rows)
    assert (records[(rid, 0)]["status"], records[(rid, 0)]["http_status"]) == ("failed", 503)
    assert [records[(rid, n)]["status"] for n in (1, 2)] == ["failed", "failed"]


@needs_pg_binaries
def test_postgresql_stopped_during_load_loses_nothing_doubles_nothing_and_fails_no_request(make_stack, tmp_path):
    with own_postgres() as pg:
        stack = ledger_stack(make_stack, tmp_path, pg.url)
        client = stack.openai()
        answered: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
                    answered.append(raw.headers["x-request-id"])
                except Exception as exc:  # noqa: BLE001  (the assertion below says which)
                    failures.append(exc)

        def ready() -> dict:
            return httpx.get(f"{stack.origin}/health/ready").json()["ledger"]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(load) for _ in range(4)]
            wait_for_rows(pg.url, lambda rows: len(rows) >= 20)
            pg.stop()
            during = len(answered)
            deadline = time.monotonic() + 10
            while ready()["database"] != "unreachable" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ready()["database"] == "unreachable"
            time.sleep(1.5)  # requests keep flowing into the spool
            assert len(answered) > during
            pg.start()
            time.sleep(0.5)
            stop.set()
            for worker in workers:
                worker.result()

        assert failures == []
        rows = wait_for_rows(pg.url, lambda rows: sum(1 for r in rows if r["attempt"] == 0) >= len(answered))
        records = by_key(rows)
        assert len(records) == len(rows)
        assert all((rid, 0) in records and records[(rid, 0)]["status"] == "ok" for rid in answered)
        assert sum(1 for row in rows if row["attempt"] == 0) == len(answered)
        assert sum(1 for row in rows if row["attempt"] > 0) == cloud_calls(stack)
        deadline = time.monotonic() + 10
        while ready()["database"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready()["database"] == "ok"


def test_an_anthropic_clients_whole_answer_carries_its_cost_too(make_stack, tmp_path):
    import anthropic

    url = f"sqlite:///{tmp_path}/ledger.db"
    stack = ledger_stack(make_stack, tmp_path, url)
    client = anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)
    raw = client.messages.with_raw_response.create(model="chat", max_tokens=50, messages=HELLO)
    assert raw.parse().content[0].text
    rid = raw.headers["x-request-id"]
    record = by_key(wait_for_rows(url, lambda rows: (rid, 0) in by_key(rows)))[(rid, 0)]
    assert record["output_tokens"] > 0 and record["billed_cost_usd"] > 0
    assert float(raw.headers["x-skyrelay-cost-usd"]) == pytest.approx(record["billed_cost_usd"], abs=1e-8)


def test_the_dashboard_and_metrics_show_each_commitments_consumption_from_the_ledger(make_stack, tmp_path):
    stack = make_stack(groups=tiered, sections={
        "database": {"url": f"sqlite:///{tmp_path}/ledger.db"},
        "ledger": {"spool_dir": str(tmp_path / "spool"), "fsync_interval_ms": 50},
        "commitments": [{"name": "b-spend", "kind": "spend", "vendor": "openai", "deployments": ["cloud-a"],
                         "amount_usd": 100.0, "start": "2026-01-01", "end": "2030-01-01"}]})
    client = stack.openai()
    ids = [client.chat.completions.with_raw_response.create(model="chat", messages=HELLO).headers["x-request-id"]
           for _ in range(3)]
    url = f"sqlite:///{tmp_path}/ledger.db"
    wait_for_rows(url, lambda rows: {r["request_id"] for r in rows} >= set(ids))
    headers = {"authorization": f"Bearer {stack.key}"}
    deadline = time.monotonic() + 10
    while True:  # the first look starts a read off the event loop; a later one shows it
        stats = httpx.get(f"{stack.origin}/admin/stats", headers=headers).json()["commitments"]
        if stats["source"] == "ledger" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (shown,) = stats["commitments"]
    assert stats["source"] == "ledger" and shown["name"] == "b-spend" and shown["amount_usd"] == 100.0
    assert shown["consumed_usd"] > 0  # the three answers' billed cost, drawn on the commitment
    metrics = httpx.get(f"{stack.origin}/metrics", headers=headers).text
    assert 'skyrelay_commitment_consumed_usd{commitment="b-spend",kind="spend",vendor="openai"}' in metrics
