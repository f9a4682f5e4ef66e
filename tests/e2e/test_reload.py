"""Configuration reload and graceful shutdown: `skyrelay serve` as operators run it (SIGHUP, SIGTERM), in front of
emulated clouds, driven by the official openai SDK; and POST /admin/reload on an in-process gateway, where the
routing state it keeps can be looked at."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from skyrelay.emulator import CloudSpec, start_cloud

from .harness import GATEWAY_KEY, HELLO, UPSTREAM_KEY, openai_deployment


def gateway_yaml(clouds: dict, names: list[str], *, drain: float | None = None) -> str:
    lines = ["server: {host: 127.0.0.1, port: 0, master_key: " + GATEWAY_KEY
             + (f", drain_timeout_s: {drain}" if drain is not None else "") + "}",
             "model_groups:", "  chat:", "    deployments:"]
    for name in names:
        lines.append(f"      - {{name: {name}, kind: openai, base_url: '{clouds[name].base_url}', "
                     f"api_key: {UPSTREAM_KEY}, model: gpt-4o-mini}}")
    return "\n".join(lines) + "\n"


class Serve:
    """`skyrelay serve` in a child process, its output in a file (a pipe nobody reads would fill and stall it)."""

    def __init__(self, tmp_path: Path, text: str, *args: str):
        self.config = tmp_path / "gateway.yaml"
        self.config.write_text(text)
        self.log = tmp_path / "serve.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "skyrelay.cli", "serve", "--config", str(self.config),
                                      *args], cwd=tmp_path, env=dict(os.environ), stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT, text=True)
        self.base_url = self.wait_for(r"listening on (http://[\d.]+:\d+/v1)").group(1)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the gateway's output:\n{self.log.read_text()}")

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def clouds(bg):
    async def start():
        return {name: await start_cloud(CloudSpec(name=name, protocol="openai", api_key=UPSTREAM_KEY, port=0,
                                                  ttft_ms=2, tokens_per_second=5000, output_tokens=8))
                for name in ("a", "b", "c")}

    made = bg.run(start())
    yield made

    async def stop():
        for cloud in made.values():
            await cloud.stop()
    bg.run(stop())


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(text: str, *args: str) -> Serve:
        started.append(Serve(tmp_path, text, *args))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def test_sighup_applies_a_new_deployment_list_during_load_with_no_failed_request(clouds, serve):
    s = serve(gateway_yaml(clouds, ["a", "b"]))
    served: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def load(count: int) -> None:
        client = s.client()
        for i in range(count):
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": f"q{i}"}])
                assert raw.parse().choices[0].message.content
                with lock:
                    served.append(raw.headers["x-skyrelay-deployment"])
            except BaseException as exc:  # noqa: BLE001 - collected, asserted below
                failures.append(exc)

    threads = [threading.Thread(target=load, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    while len(served) < 60 and not failures and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    s.config.write_text(gateway_yaml(clouds, ["b", "c"]))  # a removed, c added, b unchanged
    s.proc.send_signal(signal.SIGHUP)
    s.wait_for(r"configuration reloaded from .*added: c; removed: a")
    for t in threads:
        t.join(60)
    assert failures == [] and len(served) == 200
    assert "c" in served
    after = [s.client().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
             .headers["x-skyrelay-deployment"] for _ in range(10)]
    assert set(after) <= {"b", "c"}


def test_sighup_to_the_supervisor_reloads_every_worker(clouds, serve):
    s = serve(gateway_yaml(clouds, ["a"]), "--workers", "2")
    s.wait_for(r"listening on .*\(2 workers\)")
    s.config.write_text(gateway_yaml(clouds, ["a", "b"]))
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while s.log.read_text().count("added: b") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.log.read_text().count("configuration reloaded from") == 2, s.log.read_text()
    for _ in range(4):  # a new connection each time: both workers answer, from the new file
        client = s.client()
        assert client.chat.completions.with_raw_response.create(model="chat", messages=HELLO).headers[
            "x-skyrelay-deployment"] in ("a", "b")
        client.close()


def test_a_broken_file_on_sighup_is_refused_and_the_running_configuration_kept(clouds, serve):
    s = serve(gateway_yaml(clouds, ["a"]))
    s.config.write_text(gateway_yaml(clouds, ["a"]).replace("kind: openai", "kind: openia"))
    s.proc.send_signal(signal.SIGHUP)
    s.wait_for(r"configuration reload refused, the running configuration is kept")
    assert "openia" in s.log.read_text() and UPSTREAM_KEY not in s.log.read_text()  # problems named, no secret
    raw = s.client().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert raw.headers["x-skyrelay-deployment"] == "a"


def test_sigterm_lets_a_slow_request_in_flight_finish_then_exits_0(bg, clouds, serve):
    s = serve(gateway_yaml(clouds, ["a"], drain=10))
    bg.call(clouds["a"].set_faults, [{"kind": "hang", "seconds": 1.0}])
    answers: list = []
    request = threading.Thread(target=lambda: answers.append(
        s.client().chat.completions.create(model="chat", messages=HELLO)))
    request.start()
    deadline = time.monotonic() + 10
    while clouds["a"].stats["in_flight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    s.wait_for(r"shutting down: draining")
    with pytest.raises(httpx.TransportError):  # no new connections while draining
        httpx.get(s.base_url.rsplit("/v1", 1)[0] + "/health/live", timeout=2)
    request.join(15)
    assert answers and answers[0].choices[0].message.content  # the request in flight was answered
    assert s.proc.wait(15) == 0


def test_admin_reload_applies_a_valid_file_keeps_routing_state_and_refuses_a_broken_one(make_stack, tmp_path):
    import yaml

    s = make_stack()
    d = s.gateway.dispatcher
    kept_provider = d.providers["cloud-b"]
    s.bg.call(d.health.on_failure, "cloud-b", d.clock())  # something learnt about cloud-b: one failure
    health_before = d.health.snapshot()["cloud-b"]
    path = tmp_path / "gateway.yaml"
    server = {"host": "127.0.0.1", "port": 0, "master_key": GATEWAY_KEY}
    path.write_text(yaml.safe_dump({"server": server, **s.scratch_sections, "model_groups": {
        "chat": {"deployments": [openai_deployment("cloud-b", s.clouds["cloud-b"])]}}}))
    s.gateway.config_path = str(path)
    admin = httpx.Client(base_url=s.origin, headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=10)

    assert httpx.post(f"{s.origin}/admin/reload").status_code == 401
    answer = admin.post("/admin/reload")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "reloaded", "added": [], "changed": [],
                             "removed": ["cloud-a", "cloud-a-embed", "cloud-b-embed"], "restart_needed": []}
    assert d.providers["cloud-b"] is kept_provider  # unchanged: same connection pool
    assert d.health.snapshot()["cloud-b"] == health_before
    client = s.openai()
    assert {client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
            .headers["x-skyrelay-deployment"] for _ in range(5)} == {"cloud-b"}
    assert [m.id for m in client.models.list()] == ["chat"]

    path.write_text("model_groups:\n  chat:\n    deployments: [{kind: openai}]\n")  # no base_url, no model
    refused = admin.post("/admin/reload")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_configuration"
    assert refused.json()["problems"] and all("deployments[0]" in p for p in refused.json()["problems"])
    assert list(s.gateway.config.model_groups) == ["chat"] and d.providers["cloud-b"] is kept_provider

    health_before = d.health.snapshot()["cloud-b"]  # after the requests just served
    path.write_text(yaml.safe_dump({"server": {**server, "max_body_bytes": 1000}, **s.scratch_sections,
                                    "model_groups": {
        "chat": {"deployments": [openai_deployment("cloud-b", s.clouds["cloud-b"], weight=2)]}}}))
    changed = admin.post("/admin/reload").json()
    assert changed["changed"] == ["cloud-b"] and changed["restart_needed"] == ["server"]
    assert s.gateway.config.server.max_body_bytes != 1000  # the listening server's settings stay until a restart
    assert d.health.snapshot()["cloud-b"] == health_before  # kept by name, also for a changed deployment


def test_admin_reload_of_a_gateway_without_a_file_is_a_409(stack):
    answer = httpx.post(f"{stack.origin}/admin/reload", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert answer.status_code == 409 and "not started from a configuration file" in answer.json()["error"]["message"]
