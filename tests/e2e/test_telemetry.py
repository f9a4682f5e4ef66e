"""GET /metrics, access-log lines and event lines, from real traffic through emulated clouds."""

from __future__ import annotations

import logging
import shutil
import subprocess

import httpx2 as httpx
import orjson
import pytest

from .harness import GATEWAY_KEY, UPSTREAM_KEY, openai_deployment

HELLO = [{"role": "user", "content": "hello"}]
TRIP_AT_ONCE = {"health": {"failure_threshold": 1}}  # cloud-a's first 500 opens its breaker


def priced_group(clouds):
    price = {"input_per_mtok": 2.5, "output_per_mtok": 10.0}
    return {"chat": {"max_attempts": 3, "deployments": [
        openai_deployment("cloud-a", clouds["cloud-a"], price=price, rpm=1000, tpm=1_000_000),
        openai_deployment("cloud-b", clouds["cloud-b"], price=price, max_concurrency=50)]}}


def scrape(stack, key: str | None = GATEWAY_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{stack.origin}/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def traffic(stack, count: int = 3) -> None:
    client = stack.openai()
    for _ in range(count):
        client.chat.completions.create(model="chat", messages=HELLO)
    with client.chat.completions.create(model="chat", messages=HELLO, stream=True,
                                        stream_options={"include_usage": True}) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_metrics_count_requests_attempts_tokens_and_cost(make_stack):
    s = make_stack(groups=priced_group, sections=TRIP_AT_ONCE)
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    traffic(s, 4)
    httpx.post(f"{s.base_url}/chat/completions", json={"model": "nope", "messages": HELLO},
               headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=10)
    resp = scrape(s)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(resp.text)
    assert got['skyrelay_requests_total{model_group="chat",code_class="2xx"}'] == 5
    assert got['skyrelay_attempts_total{model_group="chat",deployment="cloud-b",vendor="openai",result="ok"}'] == 5
    assert got['skyrelay_attempts_total{model_group="chat",deployment="cloud-a",vendor="openai",result="failed"}'] >= 1
    assert got['skyrelay_failovers_total{model_group="chat",deployment="cloud-b"}'] >= 1
    assert got['skyrelay_unrouted_requests_total{route="/v1/chat/completions",code_class="4xx"}'] == 1
    output = got['skyrelay_tokens_total{model_group="chat",deployment="cloud-b",type="output"}']
    inputs = got['skyrelay_tokens_total{model_group="chat",deployment="cloud-b",type="input"}']
    assert output > 0 and inputs > 0
    cost = got['skyrelay_cost_usd_total{model_group="chat",deployment="cloud-b"}']
    assert cost == pytest.approx(inputs * 2.5e-6 + output * 10e-6)
    assert got['skyrelay_request_duration_seconds_count{model_group="chat"}'] == 5
    assert got['skyrelay_time_to_first_token_seconds_count{model_group="chat"}'] == 1
    assert got['skyrelay_deployment_quota_limit{deployment="cloud-a",quota="requests"}'] == 1000
    assert got['skyrelay_deployment_quota_limit{deployment="cloud-b",quota="concurrency"}'] == 50
    assert got['skyrelay_deployment_breaker_state{deployment="cloud-a",state="open"}'] == 1
    assert got['skyrelay_deployment_breaker_state{deployment="cloud-b",state="closed"}'] == 1
    assert "sk-test" not in resp.text


def test_metrics_need_the_master_key_unless_public(make_stack):
    s = make_stack()
    assert scrape(s, key=None).status_code == 401
    assert scrape(s, key="wrong").status_code == 401
    public = make_stack(sections={"metrics": {"public": True}})
    assert scrape(public, key=None).status_code == 200
    off = make_stack(sections={"metrics": {"enabled": False}})
    assert scrape(off).status_code == 404


def test_promtool_accepts_the_exposition(make_stack):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install --no-install-recommends prometheus)")
    s = make_stack(groups=priced_group)
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    traffic(s, 3)
    body = scrape(s).content
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_access_log_has_one_line_per_request_and_no_secret(make_stack, tmp_path):
    path = tmp_path / "access.jsonl"
    s = make_stack(groups=priced_group, sections={"logging": {"access": True, "file": str(path)}})
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    traffic(s, 2)
    httpx.get(f"{s.base_url}/models", headers={"authorization": "Bearer wrong-key"}, timeout=10)
    s.bg.call(s.gateway.telemetry.access_log.flush)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) == 4
    routed = [line for line in lines if line["model_group"] == "chat"]
    assert len(routed) == 3 and all(line["status"] == 200 and line["deployment"] == "cloud-b" for line in routed)
    assert all(line["request_id"].startswith("req_") and line["latency_ms"] >= 0 for line in routed)
    failed_over = [line for line in routed if line["attempts"] == 2]
    assert failed_over and all(line["tried"] == ["cloud-a", "cloud-b"] for line in failed_over)
    assert routed[-1]["ttft_ms"] is not None and routed[-1]["output_tokens"] > 0
    refused = [line for line in lines if line["model_group"] is None]
    assert refused == [{**refused[0], "status": 401, "method": "GET", "path": "/v1/models"}]
    text = path.read_text()
    for secret in (GATEWAY_KEY, UPSTREAM_KEY, "wrong-key", "hello"):
        assert secret not in text


def test_failover_and_breaker_are_logged(make_stack, caplog):
    s = make_stack(groups=priced_group, sections=TRIP_AT_ONCE)
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    with caplog.at_level(logging.INFO, logger="skyrelay.events"):
        traffic(s, 6)
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "skyrelay.events"]
    assert "failover" in events and "breaker_opened" in events
    opened = next(r for r in caplog.records if getattr(r, "event", None) == "breaker_opened")
    assert opened.deployment == "cloud-a"
