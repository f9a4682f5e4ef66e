"""Every line a `skyrelay serve` run writes (its own log as JSON at debug level, the access log, stdout) is free of
every secret its configuration holds and of every prompt: after answered, streamed, failed-over, throttled,
refused and mis-keyed requests, including an upstream that refuses the gateway's own credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx2 as httpx
import openai
import orjson
import pytest

from skyrelay.emulator import CloudSpec, start_cloud

from .test_examples import wait_for_line

SECRETS = {
    "SKYRELAY_MASTER_KEY": "sk-master-2f9c1e",
    "UPSTREAM_KEY": "sk-upstream-77ab31",
    "WRONG_UPSTREAM_KEY": "sk-upstream-refused-5d0e",
    "CLAUDE_KEY": "sk-ant-upstream-9c4a",
    "TEAM_KEY": "sk-team-research-a11f",
    "ADMIN_KEY": "sk-admin-ops-6b2d",
    "HEADER_TOKEN": "tok-extra-header-e3c8",
}
PROMPT = "the canary prompt 4417 must never be written down"
CONFIG = """server: {host: 127.0.0.1, port: 0, master_key: "${SKYRELAY_MASTER_KEY}"}
health: {failure_threshold: 1}
logging: {access: true}
teams: {research: {}}
keys:
  - {name: notebook, team: research, key: "${TEAM_KEY}"}
  - {name: ops, key: "${ADMIN_KEY}", role: admin}
model_groups:
  chat:
    max_attempts: 3
    deployments:
      - {name: refused, kind: openai, base_url: "%(openai)s", api_key: "${WRONG_UPSTREAM_KEY}", model: gpt-4o-mini,
         price: {input_per_mtok: 1, output_per_mtok: 2}}
      - {name: flaky, kind: openai, base_url: "%(flaky)s", api_key: "${UPSTREAM_KEY}", model: gpt-4o-mini,
         headers: {x-extra-token: "${HEADER_TOKEN}"}}
      - {name: claude, kind: anthropic, base_url: "%(claude)s", api_key: "${CLAUDE_KEY}", model: claude-sonnet-4-5}
"""


@pytest.fixture
def clouds(bg):
    specs = [CloudSpec(name="openai", protocol="openai", api_key=SECRETS["UPSTREAM_KEY"], port=0, ttft_ms=2),
             CloudSpec(name="flaky", protocol="openai", api_key=SECRETS["UPSTREAM_KEY"], port=0, ttft_ms=2),
             CloudSpec(name="claude", protocol="anthropic", api_key=SECRETS["CLAUDE_KEY"], port=0, ttft_ms=2)]
    started = {spec.name: bg.run(start_cloud(spec)) for spec in specs}
    yield started
    for cloud in started.values():
        bg.run(cloud.stop())


def test_no_secret_and_no_prompt_in_any_log_line(bg, clouds, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG % {name: cloud.base_url for name, cloud in clouds.items()})
    bg.call(clouds["flaky"].set_faults, [{"status": 429, "rate": 0.3}, {"status": 500, "rate": 0.3}])
    proc = subprocess.Popen([sys.executable, "-m", "skyrelay.cli", "serve", "--config", str(config),
                             "--log-format", "json", "--log-level", "debug"], cwd=tmp_path, text=True,
                            env={**os.environ, **SECRETS}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = wait_for_line(proc, r"listening on").split()[-1]
        for key in (SECRETS["TEAM_KEY"], SECRETS["SKYRELAY_MASTER_KEY"]):
            client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=20)
            for _ in range(4):
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": PROMPT}])
            with client.chat.completions.create(model="chat", stream=True,
                                                messages=[{"role": "user", "content": PROMPT}]) as stream:
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base, api_key=SECRETS["UPSTREAM_KEY"], max_retries=0).models.list()
        httpx.post(f"{base}/chat/completions", content=PROMPT, timeout=10,
                   headers={"authorization": f"Bearer {SECRETS['TEAM_KEY']}", "content-type": "application/json"})
        admin = {"authorization": f"Bearer {SECRETS['ADMIN_KEY']}"}
        assert httpx.get(base.removesuffix("/v1") + "/admin/stats", headers=admin, timeout=10).status_code == 200
        assert httpx.get(base.removesuffix("/v1") + "/metrics", headers=admin, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=15)
    lines = output.splitlines()
    access = [orjson.loads(line) for line in lines if line.startswith('{"time"') and '"request_id"' in line
              and '"level"' not in line]
    events = [orjson.loads(line) for line in lines if line.startswith("{") and '"level"' in line]
    assert len(access) >= 10 and {line["key"] for line in access if line["model_group"]} >= {"notebook", None}
    assert {e.get("event") for e in events} >= {"breaker_opened"}  # the refused upstream left rotation
    assert any(line.get("tried") and "refused" in line["tried"] for line in access)
    for line in lines:
        for name, secret in SECRETS.items():
            assert secret not in line, (name, line)
        assert "canary prompt" not in line, line
