"""Soak: a steady load for minutes against emulated clouds with faults injected, sampling the gateway's RSS, open
file descriptors and asyncio tasks, to show they stay flat (no leak of memory, sockets or tasks).

Two emulated clouds (one throws 503s, resets and cut streams, the other is slow now and then), one model group over
both, a mix of whole and streamed requests from wrk. Every feature that keeps state per request is on: the
deployments' rpm and tpm, a vendor concentration cap, 300 declared keys in 10 teams with limits and budgets (wrk
sends one of them), the ledger and the access log (both in a temporary directory), metrics. Loopback only; bounded
by --minutes. Usage:
python bench/soak.py [--minutes 10] [--connections 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gateway_overhead import KEY, free_port, pinned, wait_port  # noqa: E402

WARMUP_S = 60  # pools, caches and the allocator settle; growth is measured from here
LUA = """
counter = 0
request = function()
  counter = counter + 1
  local stream = (counter %% 3 == 0) and "true" or "false"
  local body = '{"model": "chat", "stream": ' .. stream .. ', "max_tokens": 40, ' ..
               '"messages": [{"role": "user", "content": "soak ' .. counter .. '"}]}'
  return wrk.format("POST", "/v1/chat/completions",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}, body)
end
"""


def emulator_file(ports: tuple[int, int]) -> str:
    return json.dumps({"clouds": [
        {"name": "flaky", "protocol": "openai", "host": "127.0.0.1", "port": ports[0], "api_key": "up",
         "models": ["gpt-4o-mini"], "ttft_ms": 5, "tokens_per_second": 4000, "output_tokens": [10, 40], "seed": 1,
         "faults": [{"status": 503, "rate": 0.05}, {"kind": "reset", "rate": 0.02},
                    {"kind": "cut_stream", "after_chunks": 3, "rate": 0.03}]},
        {"name": "slowish", "protocol": "openai", "host": "127.0.0.1", "port": ports[1], "api_key": "up",
         "models": ["gpt-4o-mini"], "ttft_ms": 10, "tokens_per_second": 3000, "output_tokens": [10, 40], "seed": 2,
         "faults": [{"kind": "slow", "extra_ms": 200, "rate": 0.02}]},
    ]})


SOAK_KEY = "sk-soak-0007"


def gateway_file(port: int, clouds: tuple[int, int], workdir: Path) -> str:
    def deployment(name, cloud, vendor):
        return {"name": name, "kind": "openai", "model": "gpt-4o-mini", "api_key": "up", "vendor": vendor,
                "base_url": f"http://127.0.0.1:{cloud}/v1", "timeouts": {"connect": 1, "first_byte": 2, "total": 10},
                "rpm": 10_000_000, "tpm": 10_000_000_000, "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}
    teams = {f"team-{t}": {"rpm": 10_000_000, "budget": {"usd": 1_000_000, "period": "month"}} for t in range(10)}
    keys = [{"name": f"key-{k}", "key": f"sk-soak-{k:04d}", "team": f"team-{k % 10}", "rpm": 10_000_000,
             "tpm": 10_000_000_000, "max_parallel": 1000, "budget": {"usd": 100_000, "period": "day"}}
            for k in range(300)]
    return json.dumps({
        "server": {"host": "127.0.0.1", "port": port, "master_key": KEY},
        "model_groups": {"chat": {"deployments": [deployment("flaky", clouds[0], "azure"),
                                                  deployment("slowish", clouds[1], "aws")],
                                  "concentration": {"max_share": 0.6, "window_s": 300}}},
        "teams": teams, "keys": keys,
        "database": {"url": f"sqlite:///{workdir}/ledger.db"}, "ledger": {"spool_dir": str(workdir / "spool")},
        "logging": {"access": True, "file": str(workdir / "access.log")}})


def sample(pid: int, port: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5).read())
    return {"t": time.monotonic(), "rss_mb": rss_kb / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "tasks": ready.get("tasks")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json")
    args = parser.parse_args()
    python = sys.executable
    clouds, port = (free_port(), free_port()), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "emulator.json").write_text(emulator_file(clouds))
        (workdir / "gateway.json").write_text(gateway_file(port, clouds, workdir))
        (workdir / "soak.lua").write_text(LUA % SOAK_KEY)
        emulator = subprocess.Popen([*pinned(1), python, "-m", "skyrelay.cli", "emulate", str(workdir / "emulator.json")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gateway = subprocess.Popen([*pinned(0), python, "-m", "skyrelay.cli", "serve", "--config",
                                    str(workdir / "gateway.json"), "--log-level", "error"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for p in (*clouds, port):
                wait_port(p)
            seconds = int(args.minutes * 60)
            load = subprocess.Popen([*pinned(1), "wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "-s",
                                     str(workdir / "soak.lua"), f"http://127.0.0.1:{port}"],
                                    stdout=subprocess.PIPE, text=True)
            samples = []
            start = time.monotonic()
            while load.poll() is None:
                samples.append(sample(gateway.pid, port))
                elapsed = samples[-1]["t"] - start
                print(f"{elapsed:6.0f} s  rss {samples[-1]['rss_mb']:6.1f} MB  fds {samples[-1]['fds']:4d}  "
                      f"tasks {samples[-1]['tasks']}", flush=True)
                time.sleep(min(15, max(1, seconds / 40)))
            out = load.stdout.read()
        finally:
            for proc in (gateway, emulator):
                proc.terminate()
                proc.wait(10)
    steady = [s for s in samples if s["t"] - start >= min(WARMUP_S, seconds / 4)] or samples
    first, last = steady[0], steady[-1]
    growth = {k: (last[k] - first[k]) / first[k] * 100 if first[k] else 0.0 for k in ("rss_mb", "fds")}
    for line in out.strip().splitlines():
        if line.startswith(("Requests/sec", "  Non-2xx")):  # how many answers were errors (the faults, failed over)
            print(line.strip())
    print(f"after warm-up: RSS {first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB ({growth['rss_mb']:+.1f}%), "
          f"fds {first['fds']} -> {last['fds']} ({growth['fds']:+.1f}%), tasks {first['tasks']} -> {last['tasks']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "growth_percent": growth}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
