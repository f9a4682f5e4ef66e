"""`skyrelay serve --workers N`: connections spread over the workers, a dead worker is replaced, signals reach
every worker, a key's limit is counted once across them (the supervisor holds the counters), a spent budget stays
spent after a kill -9 of them all (seeded from the ledger), and /metrics and /admin/stats add up every worker's
figures whichever worker is asked."""

from __future__ import annotations

import collections
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
import yaml
from jsonschema import Draft202012Validator

from skyrelay.emulator import CloudSpec, start_cloud
from skyrelay.workers import worker_share
from skyrelay.config import parse_config
from skyrelay.server import openapi_routes

from .harness import UPSTREAM_KEY
from .test_telemetry import samples
from .test_examples import skyrelay, stop, wait_for_line

GATEWAY = """
server: {{host: 127.0.0.1, port: 0, master_key: sk-master}}
model_groups:
  chat:
    deployments:
      - {{name: up, kind: openai, model: gpt-4o-mini, base_url: "{cloud}", api_key: {upstream}}}
keys:
  - {{name: bot, key: sk-bot, rpm: 12}}
"""
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def workers(tmp_path, bg):
    cloud = bg.run(start_cloud(CloudSpec(name="up", protocol="openai", api_key=UPSTREAM_KEY, ttft_ms=1, port=0)))
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.format(cloud=cloud.base_url, upstream=UPSTREAM_KEY))
    proc = skyrelay("serve", "--config", str(config), "--workers", "2")
    try:
        line = wait_for_line(proc, r"listening on .*\(2 workers\)")
        yield proc, re.search(r"http://[\d.]+:\d+", line).group(0)
    finally:
        if proc.poll() is None:
            assert stop(proc) == 0
        bg.run(cloud.stop())


def worker_pids(url: str, connections: int) -> collections.Counter:
    """Which worker answers each of `connections` new keep-alive connections (three requests on each)."""
    host, port = url.removeprefix("http://").split(":")
    seen = collections.Counter()
    for _ in range(connections):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        pids = set()
        for _ in range(3):
            conn.request("GET", "/health/ready")
            pids.add(json.loads(conn.getresponse().read())["pid"])
        conn.close()
        assert len(pids) == 1  # a keep-alive connection stays with its worker
        seen[pids.pop()] += 1
    return seen


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def test_connections_spread_over_the_workers_and_a_dead_worker_is_replaced(workers):
    proc, url = workers
    spread = worker_pids(url, 40)
    assert len(spread) == 2 and min(spread.values()) >= 8  # SO_REUSEPORT hashes connections over both
    victim = next(iter(spread))
    os.kill(victim, signal.SIGKILL)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master", max_retries=0, timeout=20)
    for _ in range(10):  # served meanwhile by the worker left (the kernel skips a closed listener)
        client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    deadline = time.monotonic() + 15
    answering: set[int] = set()
    while time.monotonic() < deadline and len(answering) < 2:
        answering = set(worker_pids(url, 10))  # the replacement answers once it listens
        time.sleep(0.1)
    assert len(answering) == 2 and victim not in answering
    assert answering == children(proc.pid)


def test_a_keys_limit_is_counted_once_across_the_workers(workers):
    _, url = workers
    served = refused = 0
    for _ in range(30):  # a new connection each time: the requests land on both workers
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-bot", max_retries=0, timeout=20)
        try:
            client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
            served += 1
        except openai.RateLimitError as exc:
            assert exc.response.headers.get("retry-after")
            refused += 1
        client.close()
    assert (served, refused) == (12, 18)


def test_sigterm_to_the_supervisor_stops_every_worker(workers):
    proc, url = workers
    pids = children(proc.pid)
    assert len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()


def test_each_worker_takes_its_exact_share_of_a_deployments_quota():
    config = parse_config({"model_groups": {"chat": {"deployments": [
        {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", "rpm": 10, "tpm": 1001,
         "max_concurrency": 3, "tier": 0},
        {"name": "b", "kind": "openai", "base_url": "http://127.0.0.1:2/v1", "model": "m", "tier": 1}]}}})
    shares = [worker_share(config, index, 3).model_groups["chat"] for index in range(3)]
    assert [g.deployments[0].rpm for g in shares] == [4, 3, 3]
    assert sum(g.deployments[0].tpm for g in shares) == 1001
    assert [g.deployments[0].max_concurrency for g in shares] == [1, 1, 1]
    assert all(g.deployments[1].rpm is None for g in shares)
    assert all(g.tiers[0][0] is g.deployments[0] for g in shares)  # the planner's tiers hold the cut deployments


def test_on_redis_workers_share_a_deployments_rpm_and_tpm_and_split_only_its_max_concurrency():
    config = parse_config({"state": {"backend": "redis", "url": "redis://127.0.0.1:6379/0"},
                           "model_groups": {"chat": {"deployments": [
        {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", "rpm": 10, "tpm": 1001,
         "max_concurrency": 3}]}}})
    shares = [worker_share(config, index, 3).model_groups["chat"].deployments[0] for index in range(3)]
    assert [(d.rpm, d.tpm, d.max_concurrency) for d in shares] == [(10, 1001, 1)] * 3  # Redis counts rpm/tpm once


def test_metrics_add_up_every_workers_counters_whichever_answers(workers):
    _, url = workers
    for _ in range(20):  # a new connection each time: the requests land on both workers
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master", max_retries=0, timeout=20)
        client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
        client.close()
    promtool = shutil.which("promtool")
    for _ in range(10):  # each scrape on a new connection: either worker answers, and asks the other
        body = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer sk-master"}, timeout=10).content
        got = samples(body.decode())
        assert got['skyrelay_requests_total{model_group="chat",code_class="2xx"}'] == 20
        assert got['skyrelay_attempts_total{model_group="chat",deployment="up",vendor="openai",result="ok"}'] == 20
        assert got['skyrelay_request_duration_seconds_count{model_group="chat"}'] == 20
        assert got["skyrelay_workers_reporting"] == 2 and got["skyrelay_workers"] == 2
        assert {got[f'skyrelay_deployment_in_flight{{deployment="up",worker="{w}"}}'] for w in "01"} == {0}
        if promtool is not None:
            check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
            assert check.returncode == 0, (check.stdout + check.stderr).decode()


def stats_by_worker(url: str, connections: int) -> dict[int, list[dict]]:
    """/admin/stats asked on each of `connections` new connections, by the pid of the worker that answered."""
    host, port = url.removeprefix("http://").split(":")
    answers: dict[int, list[dict]] = collections.defaultdict(list)
    for _ in range(connections):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/health/ready")
        pid = json.loads(conn.getresponse().read())["pid"]
        conn.request("GET", "/admin/stats", headers={"authorization": "Bearer sk-master"})  # the same worker
        resp = conn.getresponse()
        assert resp.status == 200
        answers[pid].append(json.loads(resp.read()))
        conn.close()
    return answers


def test_admin_stats_answers_for_every_worker_whichever_answers(workers):
    _, url = workers
    sent = 24
    for _ in range(sent):  # a new connection each time: the requests land on both workers
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master", max_retries=0, timeout=20)
        client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
        client.close()
    with open(Path(openapi_routes.__file__).with_name("openapi.yaml"), encoding="utf-8") as f:
        components = yaml.safe_load(f)["components"]
    schema = Draft202012Validator({"$ref": "#/components/schemas/AdminStats", "components": components})
    answers = stats_by_worker(url, 16)
    assert len(answers) == 2  # both workers answered some
    for body in (body for bodies in answers.values() for body in bodies):
        assert not list(schema.iter_errors(body)), body
        assert body["workers"] == {"count": 2, "reporting": 2}
        assert sum(body["series"]["deployments"]["up"]["ok"]) == sent
        (up,) = body["deployments"]
        assert up["share"] == 1.0 and up["in_flight"] == 0
        assert [w["breaker"] for w in up["health"]["workers"]] == ["closed", "closed"]
        assert body["model_groups"][0]["tiers"] == [{"tier": 0, "served": sent, "share": 1.0}]


BUDGETED = GATEWAY.replace("  - {{name: bot, key: sk-bot, rpm: 12}}\n", """\
  - {{name: spender, key: sk-spender, budget: {{usd: 0.2, period: day}}}}
database: {{url: "sqlite:///{dir}/ledger.db"}}
ledger: {{spool_dir: "{dir}/spool", fsync_interval_ms: 20}}
""").replace("api_key: {upstream}}}", "api_key: {upstream}, price: {{input_per_mtok: 1000, output_per_mtok: 2000}}}}")


def read_until(proc: subprocess.Popen, wanted: dict[str, int], timeout: float = 20) -> list[str]:
    """The lines a process printed until each pattern of `wanted` matched as many lines as it says (read by a
    thread, so that a line that never comes fails the test after `timeout` instead of blocking it)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline, seen, left = time.monotonic() + timeout, [], dict(wanted)
    while any(left.values()):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        for pattern, count in left.items():
            if count and re.search(pattern, line):
                left[pattern] = count - 1
    assert not any(left.values()), f"not all of {wanted} printed:\n{''.join(seen)}"
    return seen


def test_a_budget_spent_across_the_workers_stays_spent_after_kill_9_of_them_all(tmp_path, bg):
    """The supervisor holds the counters: a kill -9 of it and its workers loses them, and the spools hold the
    last records. The restarted workers adopt those spools, and the budget is seeded from the ledger once they are
    committed, whichever worker a request then lands on."""
    cloud = bg.run(start_cloud(CloudSpec(name="up", protocol="openai", api_key=UPSTREAM_KEY, ttft_ms=1, port=0,
                                         output_tokens=12)))
    config = tmp_path / "gateway.yaml"
    config.write_text(BUDGETED.format(cloud=cloud.base_url, upstream=UPSTREAM_KEY, dir=tmp_path))

    def spend(url: str, count: int) -> list[str]:
        answers = []
        for _ in range(count):  # a new connection each time: the requests land on both workers
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-spender", max_retries=0, timeout=20)
            try:
                client.chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
                answers.append("ok")
            except openai.RateLimitError as exc:
                assert exc.code == "insufficient_quota"
                answers.append("429")
            client.close()
        return answers

    try:
        proc = skyrelay("serve", "--config", str(config), "--workers", "2")
        url = re.search(r"http://[\d.]+:\d+", wait_for_line(proc, r"listening on .*\(2 workers\)")).group(0)
        spent = spend(url, 10)
        assert "ok" in spent and spent[-1] == "429"
        time.sleep(0.1)  # the spools' last lines on disk (fsync_interval_ms: 20)
        pids = children(proc.pid)
        proc.kill()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        proc = skyrelay("serve", "--config", str(config), "--workers", "2")
        lines = read_until(proc, {r"listening on .*\(2 workers\)": 1, r"counters seeded": 2})  # each worker's
        url = re.search(r"http://[\d.]+:\d+", "".join(lines)).group(0)
        assert any("1 of 1 counters seeded" in line for line in lines)  # the one that adopted the spools read it
        assert spend(url, 6) == ["429"] * 6
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        bg.run(cloud.stop())
