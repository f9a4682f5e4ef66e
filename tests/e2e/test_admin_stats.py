"""GET /admin/stats and the gauges /metrics gained with it, from real traffic through emulated clouds: who may
read it, traffic and share per deployment and vendor, health after a fault, quota headroom and tier spillover,
the vendor cap, spend by team, recent errors; and promtool still accepts the exposition."""

from __future__ import annotations

import shutil
import subprocess

import httpx2 as httpx
import pytest

from .harness import GATEWAY_KEY, HELLO, openai_deployment

ADMIN_KEY = "sk-stats-admin"
TEAM_KEY = "sk-stats-research"
SECTIONS = {
    "health": {"failure_threshold": 1},
    "teams": {"research": {}},
    "keys": [{"name": "ops", "key": ADMIN_KEY, "role": "admin"},
             {"name": "notebook", "key": TEAM_KEY, "team": "research"}],
    "commitments": [{"name": "beta-reserved", "kind": "reserved", "vendor": "beta", "cost_per_hour": 2.0,
                     "deployments": ["spill"], "start": "2026-01-01", "end": "2027-01-01"}],
}
PRICE = {"input_per_mtok": 2.5, "output_per_mtok": 10.0}


def groups(clouds):
    # "base" (tier 0) takes 3 requests a minute; "spill" (tier 1) the rest; "flaky" is another group's only other.
    return {
        "chat": {"deployments": [
            openai_deployment("base", clouds["cloud-a"], vendor="alpha", price=PRICE, rpm=3),
            openai_deployment("spill", clouds["cloud-b"], vendor="beta", price=PRICE, tier=1)]},
        "capped": {"max_attempts": 2, "concentration": {"max_share": 0.5, "on_breach": "serve"}, "deployments": [
            openai_deployment("steady", clouds["cloud-b"], vendor="beta", price=PRICE),
            openai_deployment("flaky", clouds["cloud-c"], vendor="gamma", price=PRICE)]},
    }


@pytest.fixture
def stack(make_stack):
    return make_stack(cloud_specs=[{"name": "cloud-a"}, {"name": "cloud-b"}, {"name": "cloud-c"}], groups=groups,
                      sections=SECTIONS)


def stats(stack, key: str | None = ADMIN_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{stack.origin}/admin/stats", headers=headers, timeout=10)


def send(stack, model: str, count: int, key: str = TEAM_KEY) -> None:
    client = stack.openai(api_key=key)
    for _ in range(count):
        client.chat.completions.create(model=model, messages=HELLO)


def test_only_the_master_key_and_admin_keys_may_read_it(stack):
    assert stats(stack).status_code == 200
    assert stats(stack, GATEWAY_KEY).status_code == 200
    denied = stats(stack, TEAM_KEY)
    assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"
    assert "role admin" in denied.json()["error"]["message"] and TEAM_KEY not in denied.text
    assert stats(stack, None).status_code == 401
    assert stats(stack, "sk-wrong").status_code == 401
    metrics = f"{stack.origin}/metrics"  # the same rule guards /metrics (unless metrics.public)
    assert httpx.get(metrics, headers={"authorization": f"Bearer {TEAM_KEY}"}, timeout=10).status_code == 403
    assert httpx.get(metrics, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).status_code == 200


def test_traffic_spillover_spend_and_health_after_a_fault(stack):
    send(stack, "chat", 6)  # 3 on base (its rpm), then 3 spill to tier 1
    stack.set_faults("cloud-c", [{"status": 503, "rate": 1.0}])
    send(stack, "capped", 8, key=GATEWAY_KEY)
    body = stats(stack).json()
    rows = {d["name"]: d for d in body["deployments"]}
    assert rows["base"]["quota"]["limits"]["requests"] == {"limit": 3, "used": 3}
    assert rows["base"]["quota"]["headroom"] == 0.0 and rows["spill"]["quota"]["headroom"] is None
    assert rows["base"]["requests_per_s"] > 0 and rows["base"]["latency_ms"] > 0
    chat = next(g for g in body["model_groups"] if g["name"] == "chat")
    assert [(t["tier"], t["served"]) for t in chat["tiers"]] == [(0, 3), (1, 3)]
    assert chat["spillover_share"] == 0.5

    flaky = rows["flaky"]["health"]
    assert flaky["breaker"] == "open" and not flaky["available"] and flaky["ejections"] == 1
    assert rows["steady"]["health"] == {**rows["steady"]["health"], "breaker": "closed", "available": True}
    capped = next(g for g in body["model_groups"] if g["name"] == "capped")["concentration"]
    assert capped["max_share"] == 0.5 and capped["vendors"]["beta"] > 0.5 and capped["over_cap"] == ["beta"]
    assert capped["breaches"] > 0  # gamma is down: beta served over its cap (on_breach: serve)
    assert body["errors"][0] == {**body["errors"][0], "model_group": "capped", "deployment": "flaky",
                                 "error": "UpstreamUnavailable", "status": 200}

    series = body["series"]["deployments"]["spill"]
    assert sum(series["ok"]) == 3 and len(series["ok"]) == len(series["failed"]) >= 1
    assert {v["vendor"] for v in body["vendors"]} == {"alpha", "beta", "gamma"}
    assert sum(v["share"] for v in body["vendors"]) == pytest.approx(1.0, abs=0.01)

    teams = {t["team"]: t for t in body["spend"]["teams"]}
    research = teams["research"]["model_groups"][0]
    # billed, as the ledger records it: beta's "spill" is reserved capacity, paid by the hour, so it bills nothing
    assert research["model_group"] == "chat" and set(research["vendors"]) == {"alpha"}
    assert teams["(no team)"]["model_groups"][0]["model_group"] == "capped"
    assert research["usd"] > 0
    (commitment,) = body["commitments"]["commitments"]
    assert commitment["name"] == "beta-reserved" and 0 < commitment["elapsed"] < 1
    assert body["state"] == {**body["state"], "backend": "memory", "shared": True}
    text = stats(stack).text
    assert ADMIN_KEY not in text and TEAM_KEY not in text and GATEWAY_KEY not in text


def test_metrics_gain_team_headroom_share_and_ejection_series(stack):
    send(stack, "chat", 4)
    stack.set_faults("cloud-c", [{"status": 503, "rate": 1.0}])
    send(stack, "capped", 6, key=GATEWAY_KEY)
    resp = httpx.get(f"{stack.origin}/metrics", headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=10)
    got = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
           for line in resp.text.splitlines() if line and not line.startswith("#")}
    assert got['skyrelay_team_requests_total{team="research",model_group="chat",code_class="2xx"}'] == 4
    assert got['skyrelay_team_cost_usd_total{team="research",model_group="chat"}'] > 0
    assert not any('team="' in name and "capped" in name for name in got)  # the master key's requests: no team
    assert got['skyrelay_deployment_quota_headroom{deployment="base"}'] == 0
    assert got['skyrelay_vendor_share_cap{model_group="capped"}'] == 0.5
    assert got['skyrelay_vendor_share{model_group="capped",vendor="beta"}'] > 0.5
    assert got['skyrelay_concentration_breaches_total{model_group="capped"}'] > 0
    assert got['skyrelay_deployment_ejections_total{deployment="flaky"}'] == 1
    assert got['skyrelay_state_shared{backend="memory"}'] == 1
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=resp.content, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
