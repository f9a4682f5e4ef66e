"""What a new user meets first on the command line: `emulate FILE` as the docs show it, one clear line for a port
already in use, and a SIGHUP that reloads the gateway instead of killing it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import httpx2 as httpx
import pytest

from .test_examples import ROOT, skyrelay, stop, wait_for_line

EMULATOR = "clouds:\n  - name: lone\n    protocol: openai\n    port: {port}\n"
GATEWAY = """server: {{host: 127.0.0.1, port: {port}}}
model_groups:
  chat:
    deployments: [{{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}]
"""


def run_cli(*args: str, timeout: float = 20, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skyrelay.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def taken_port():
    """A port bound (and listening) by the test itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("form", [["FILE"], ["--config", "FILE"], ["FILE", "--config", "FILE"]])
def test_emulate_takes_the_file_as_an_argument_or_an_option(tmp_path, form):
    config = tmp_path / "emulator.yaml"
    config.write_text(EMULATOR.format(port=0))
    proc = skyrelay("emulate", *[str(config) if arg == "FILE" else arg for arg in form])
    try:
        url = wait_for_line(proc, r"http://127\.0\.0\.1:\d+").split()[-1]
        assert httpx.get(f"{url}/models").status_code in (200, 401)
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("args, message", [
    ([], "configuration file is required"),
    (["a.yaml", "--config", "b.yaml"], "two different files"),
])
def test_emulate_wants_exactly_one_file(args, message):
    out = run_cli("emulate", *args)
    assert out.returncode == 2 and message in out.stderr


def test_emulate_reports_a_bad_file_in_one_line(tmp_path):
    config = tmp_path / "emulator.yaml"
    config.write_text(EMULATOR.format(port=0) + "    bogus: 1\n")
    out = run_cli("emulate", str(config))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "bogus" in out.stderr
    assert "Traceback" not in out.stderr


def _assert_one_line(out: subprocess.CompletedProcess, port: int) -> None:
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("skyrelay:")]
    assert errors == [f"skyrelay: cannot listen on 127.0.0.1:{port}: address already in use"], out.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path, taken_port):
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.format(port=taken_port))
    out = run_cli("serve", "--config", str(config))
    _assert_one_line(out, taken_port)
    assert out.stderr.strip().count("\n") == 0


def test_demo_on_an_explicit_port_in_use_says_so_in_one_line(taken_port):
    _assert_one_line(run_cli("demo", "--port", str(taken_port)), taken_port)


def test_emulate_on_a_port_in_use_says_so_in_one_line(tmp_path, taken_port):
    config = tmp_path / "emulator.yaml"
    config.write_text(EMULATOR.format(port=taken_port))
    out = run_cli("emulate", str(config))
    _assert_one_line(out, taken_port)
    assert out.stderr.strip().count("\n") == 0


def test_sighup_reloads_the_file_and_keeps_serving(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.format(port=0))
    proc = skyrelay("serve", "--config", str(config))
    try:
        base = wait_for_line(proc, r"listening on").split()[-1]
        proc.send_signal(signal.SIGHUP)
        wait_for_line(proc, r"configuration reloaded from .*: no change")
        assert httpx.get(f"{base}/models").status_code == 200  # still serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
