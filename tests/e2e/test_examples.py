"""The shipped examples work as documented: `skyrelay emulate` + `skyrelay serve` with examples/multicloud.yaml,
and `skyrelay check-config` explains mistakes with their YAML paths."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "SKYRELAY_MASTER_KEY": "sk-local", "AZURE_OPENAI_API_KEY": "az-local", "ANTHROPIC_API_KEY": "ant-local",
    "GEMINI_API_KEY": "gem-local", "AWS_ACCESS_KEY_ID": "AKIDLOCALEMULATOR", "AWS_SECRET_ACCESS_KEY": "local-secret",
}


def skyrelay(*args: str, env: dict | None = None, cwd: Path | None = None, **kw) -> subprocess.Popen:
    """The CLI as a child process. `serve --config FILE` runs in FILE's directory (a test's tmp_path), so that its
    default database and spool (./.skyrelay/) belong to that test, not to the checkout shared by every test."""
    if cwd is None:
        cwd = Path(args[args.index("--config") + 1]).parent if args[0] == "serve" and "--config" in args else ROOT
    return subprocess.Popen([sys.executable, "-m", "skyrelay.cli", *args], cwd=cwd, text=True,
                            env={**os.environ, **ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kw)


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(seen)}")


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGINT, then the exit code; a process still running after `timeout` is killed, and the failure shows what
    it printed (a stuck shutdown reports its step and stacks after a few seconds)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # its children still hold the pipe
            out = ""
        raise AssertionError(f"{' '.join(proc.args[3:])} still running {timeout} s after SIGINT; it printed:\n"
                             f"{(out or '')[-6000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()


def with_free_ports(tmp_path: Path, emulator_file: str, gateway_file: str, ports: tuple[str, ...]) -> tuple[Path, Path]:
    """The two example files as shipped, but with the emulated clouds on free ports instead of the fixed ones, so
    that parallel runs of the suite (or a running demo) cannot collide."""
    emulator = (ROOT / emulator_file).read_text()
    gateway = (ROOT / gateway_file).read_text()
    held = [socket.socket() for _ in ports]  # all bound at once: a port let go can be handed out again at once
    try:
        for sock in held:
            sock.bind(("127.0.0.1", 0))
        for fixed, sock in zip(ports, held):
            free = str(sock.getsockname()[1])
            assert f"port: {fixed}" in emulator and f"127.0.0.1:{fixed}" in gateway
            emulator = emulator.replace(f"port: {fixed}", f"port: {free}")
            gateway = gateway.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
    finally:
        for sock in held:
            sock.close()
    (tmp_path / "emulator.yaml").write_text(emulator)
    (tmp_path / "gateway.yaml").write_text(gateway)
    return tmp_path / "emulator.yaml", tmp_path / "gateway.yaml"


def run_example(tmp_path: Path, emulator_file: str, gateway_file: str, ports: tuple[str, ...], check) -> None:
    """`skyrelay emulate` and `skyrelay serve` as the README shows them, then `check(base_url)`, then Ctrl-C."""
    emulator_config, gateway_config = with_free_ports(tmp_path, emulator_file, gateway_file, ports)
    emulator = skyrelay("emulate", "--config", str(emulator_config))
    gateway = None
    try:
        for _ in ports:
            wait_for_line(emulator, r"http://127\.0\.0\.1:\d+")
        gateway = skyrelay("serve", "--config", str(gateway_config), "--port", "0")
        check(re.search(r"http://[\d.]+:\d+", wait_for_line(gateway, r"listening on")).group(0))
    finally:
        if gateway is not None:
            assert stop(gateway) == 0
        assert stop(emulator) == 0


def test_gateway_example_as_the_readme_shows_it(tmp_path):
    def check(base):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-local", max_retries=0)
        served = {client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=5).headers["x-skyrelay-deployment"]
            for _ in range(8)}
        assert served <= {"azure-eastus", "aws-useast1"} and served
        assert client.embeddings.create(model="embed", input="hello").data[0].embedding

    run_example(tmp_path, "examples/emulator.yaml", "examples/gateway.yaml", ("9101", "9102"), check)


def test_multicloud_example_serves_both_sdks(tmp_path):
    def check(base):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-local", max_retries=0)
        served = set()
        for _ in range(16):
            raw = client.chat.completions.with_raw_response.create(
                model="smart", messages=[{"role": "user", "content": "hello"}], max_tokens=5)
            assert raw.parse().choices[0].message.content
            served.add(raw.headers["x-skyrelay-deployment"])
        assert len(served) >= 3, served
        message = anthropic.Anthropic(base_url=base, api_key="sk-local", max_retries=0).messages.create(
            model="smart", max_tokens=5, messages=[{"role": "user", "content": "hello"}])
        assert message.content[0].text

    run_example(tmp_path, "examples/emulator-multicloud.yaml", "examples/multicloud.yaml",
                ("9201", "9202", "9203", "9204"), check)


def test_check_config_explains_mistakes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "server:\n  port: abc\nmodel_groups:\n  chat:\n    deployments:\n"
        "      - {kind: openai, base_url: http://127.0.0.1:1/v1, model: m}\n"
        "      - {kind: openai, base_url: not-a-url, model: m, api_key: sk-very-secret}\n")
    out = subprocess.run([sys.executable, "-m", "skyrelay.cli", "check-config", str(bad)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert "server.port" in out.stdout
    assert "model_groups.chat.deployments[1].base_url: not a URL" in out.stdout
    assert "sk-very-secret" not in out.stdout + out.stderr
    good = subprocess.run([sys.executable, "-m", "skyrelay.cli", "check-config", "examples/multicloud.yaml"],
                          cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=30)
    assert good.returncode == 0, good.stdout + good.stderr


def test_serve_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_groups: {chat: {deployments: [{kind: nope, model: m}]}}\n")
    proc = skyrelay("serve", "--config", str(bad))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "model_groups.chat.deployments[0].kind" in out


def test_simulator_examples_run_from_a_clean_clone(tmp_path):
    """Each examples/sim scenario, shortened to its first minutes: the summary, report.json and the plots."""
    for name, plots in (("peak-day", 4), ("commitments", 4)):
        out = tmp_path / name
        run = subprocess.run([sys.executable, "-m", "skyrelay.cli", "simulate", f"examples/sim/{name}.yaml", "--out",
                              str(out), "--duration", "900", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"scenario {name}" in run.stdout and "vendors:" in run.stdout
        assert (out / "report.json").exists() and len(list(out.glob("*.png"))) == plots
    out = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "-m", "skyrelay.cli", "simulate", "examples/sim/reserved-sweep.yaml",
                          "--out", str(out), "--duration", "600", "--quiet"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cheapest meeting the objective" in run.stdout or "no value of" in run.stdout
    assert (out / "sweep.json").exists() and (out / "frontier.png").exists()


def test_simulate_explains_a_bad_scenario(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {model_groups: {chat: {deployments: [{name: a, kind: openai, "
                   "base_url: 'http://127.0.0.1:9/v1', model: m}]}}}\ntraffic: {rps: -1}\nclouds: {b: {}}\n")
    run = subprocess.run([sys.executable, "-m", "skyrelay.cli", "simulate", str(bad), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "traffic.rps" in run.stderr and "clouds.b" in run.stderr
