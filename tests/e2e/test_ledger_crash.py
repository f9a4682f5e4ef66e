"""`kill -9` of `skyrelay serve` in the middle of a load run against `skyrelay emulate`, then a restart: every call
the emulated clouds served has its attempt record (finished, or `interrupted` when the process died with it in
flight), every answered request its request record, and nothing is recorded twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from .test_examples import skyrelay, stop, wait_for_line
from tests.support.ledger_rows import by_key, ledger_rows
from tests.support.postgres_service import ledger_database_url  # noqa: F401  (a fixture)

CONCURRENCY = 8
HELLO = [{"role": "user", "content": "hello"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drained(proc: subprocess.Popen) -> subprocess.Popen:
    """Keep reading a process's output so that its logging never blocks on a full pipe."""
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc


def write_configs(tmp_path: Path, url: str) -> tuple[Path, Path, list[int], int]:
    clouds = [free_port(), free_port()]
    gateway_port = free_port()
    emulator = tmp_path / "emulator.yaml"
    emulator.write_text("clouds:\n" + "".join(
        f"  - {{name: c{n}, protocol: openai, port: {port}, ttft_ms: 20, tokens_per_second: 300, "
        f"output_tokens: 6}}\n" for n, port in enumerate(clouds)))
    gateway = tmp_path / "gateway.yaml"
    deployments = ", ".join(
        f'{{name: c{n}, kind: openai, base_url: "http://127.0.0.1:{port}/v1", model: gpt-4o-mini, '
        f"price: {{input_per_mtok: 1, output_per_mtok: 4}}}}" for n, port in enumerate(clouds))
    gateway.write_text(
        f"server: {{host: 127.0.0.1, port: {gateway_port}}}\n"
        f"model_groups:\n  chat:\n    deployments: [{deployments}]\n"
        f'database: {{url: "{url}"}}\n'
        f'ledger: {{spool_dir: "{tmp_path}/spool", fsync_interval_ms: 50, segment_bytes: 65536}}\n')
    return emulator, gateway, clouds, gateway_port


def load(base_url: str, answered: list[str], stop_now: threading.Event, worker: int) -> None:
    """Requests one after another (every other one streamed) until the gateway stops answering."""
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=5)
    n = 0
    while not stop_now.is_set():
        n += 1
        try:
            if (n + worker) % 2:
                raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
                raw.parse()
                answered.append(raw.headers["x-request-id"])
            else:
                with client.chat.completions.with_streaming_response.create(
                        model="chat", messages=HELLO, stream=True) as raw:
                    chunks = list(raw.parse())
                    assert chunks
                    answered.append(raw.headers["x-request-id"])
        except (openai.APIError, httpx.HTTPError, AssertionError):
            return  # the gateway is gone


def test_kill_9_mid_load_then_restart_loses_no_call_and_counts_none_twice(tmp_path, ledger_database_url):
    emulator_file, gateway_file, cloud_ports, port = write_configs(tmp_path, ledger_database_url)
    emulator = drained_after(skyrelay("emulate", str(emulator_file)), r"http://127\.0\.0\.1:\d+")
    gateway = None
    try:
        gateway = drained_after(skyrelay("serve", "--config", str(gateway_file)), "listening on")
        answered: list[str] = []
        halt = threading.Event()
        workers = [threading.Thread(target=load, args=(f"http://127.0.0.1:{port}/v1", answered, halt, n))
                   for n in range(CONCURRENCY)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while len(answered) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(gateway.pid, signal.SIGKILL)  # mid-run: requests are in flight
        gateway.wait(10)
        halt.set()
        for worker in workers:
            worker.join(10)
        spool = tmp_path / "spool"
        dead = {name.split(".")[0] for name in os.listdir(spool)}
        assert dead, "the killed gateway left its spool"

        gateway = drained_after(skyrelay("serve", "--config", str(gateway_file)), "listening on")
        deadline = time.monotonic() + 30
        while any(name.startswith(tuple(dead)) for name in os.listdir(spool)) and time.monotonic() < deadline:
            time.sleep(0.1)  # adopted, shipped, then deleted
        assert not any(name.startswith(tuple(dead)) for name in os.listdir(spool))
        rows = ledger_rows(ledger_database_url)
        calls = sum(httpx.get(f"http://127.0.0.1:{p}/_emulator/stats").json()["by_path"].get(
            "POST /v1/chat/completions", 0) for p in cloud_ports)
    finally:
        if gateway is not None:
            stop(gateway)
        stop(emulator)

    records = by_key(rows)
    assert len(records) == len(rows), "no record twice"
    attempts = [row for row in rows if row["attempt"] > 0]
    interrupted = [row for row in attempts if row["status"] == "interrupted"]
    finished = len(attempts) - len(interrupted)
    # Every call the clouds saw has a record; a finished record had its call; an interrupted one may have died
    # just before its bytes left (then the cloud never saw it).
    assert finished <= calls <= len(attempts), (finished, calls, len(attempts))
    assert len(interrupted) <= CONCURRENCY
    assert all(row["estimated"] == 1 and row["input_tokens"] + row["output_tokens"] > 0 for row in interrupted)
    for rid in answered:  # every answer the clients got has its request record and its serving attempt's
        assert records[(rid, 0)]["status"] == "ok"
        assert any(records.get((rid, n), {}).get("status") == "ok" for n in (1, 2, 3))
    requests = {row["request_id"] for row in rows if row["attempt"] == 0}
    assert {row["request_id"] for row in attempts} <= requests, "a request left by the dead process has its record"
    assert len(answered) >= 40


def drained_after(proc: subprocess.Popen, pattern: str) -> subprocess.Popen:
    wait_for_line(proc, pattern)
    return drained(proc)


def test_serve_says_in_one_line_when_the_spool_cannot_be_written(tmp_path):
    from .test_cli import run_cli

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    config = tmp_path / "gateway.yaml"
    config.write_text(f"server: {{host: 127.0.0.1, port: {free_port()}}}\nmodel_groups:\n  chat:\n"
                      '    deployments: [{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}]\n'
                      f'ledger: {{spool_dir: "{blocked}/spool"}}\n')
    out = run_cli("serve", "--config", str(config))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("skyrelay:")] == [
        f"skyrelay: cannot write the ledger's spool in ledger.spool_dir '{blocked}/spool': Not a directory"]
