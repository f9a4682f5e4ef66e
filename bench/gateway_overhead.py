"""Loopback benchmark: what the gateway adds per request, next to a direct call to the same upstream, same run.

Processes: a static upstream (bench/static_upstream.py), the gateway (`skyrelay serve`) and the floor proxy
(bench/floor_proxy.py: the same HTTP server and client with no gateway logic), the proxies pinned to one core and
the upstream with `wrk` to the other. Reported: requests/s, p50/p99 latency, CPU time per request of the gateway
and of the floor (from /proc, user + system), and the added latency at one connection. Bounded: a few seconds
per phase, 127.0.0.1 only. Usage: python bench/gateway_overhead.py [--seconds 5] [--connections 32]
[--access-log /dev/null]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import governance  # bench/governance.py: the realistic key and team configuration

HERE = Path(__file__).resolve().parent
KEY = "sk-bench"
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.60}  # a budget (--governed) needs a price to count
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Say something about foxes."}]}
# The same prompt on /v1/messages, to a deployment of kind anthropic: the Anthropic pass-through.
MESSAGES = {"model": "claude", "max_tokens": 256, "messages": CHAT["messages"]}
WORKLOADS = (  # (label, path, body)
    ("chat", "/v1/chat/completions", CHAT),
    ("chat, 20-chunk stream", "/v1/chat/completions", {**CHAT, "stream": True}),
    ("messages (Anthropic pass-through)", "/v1/messages", MESSAGES),
    ("messages, 24-event stream", "/v1/messages", {**MESSAGES, "stream": True}),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() >= 2 else []


def wrk(url: str, body: dict, seconds: float, connections: int, workdir: Path, key: str = KEY,
        core: int | None = 1) -> dict:
    """`core`: where wrk runs (None: anywhere)."""
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{json.dumps(body)}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    out = subprocess.run(
        [*(pinned(core) if core is not None else []), "wrk", "-t1", f"-c{connections}",
         f"-d{max(1, round(seconds))}s", "--timeout", "20s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    broken = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, broken.groups())) if broken else 0),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(args, workdir: Path) -> list[dict]:
    up_port, gw_port, floor_port = free_port(), free_port(), free_port()
    python = sys.executable
    upstream = subprocess.Popen([*pinned(1), python, str(HERE / "static_upstream.py"), str(up_port)],
                                stdout=subprocess.DEVNULL)
    config = workdir / "gateway.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "server": {"host": "127.0.0.1", "port": gw_port, "master_key": KEY},
        "model_groups": {
            "chat": {"deployments": [{"name": "static", "kind": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1",
                                      "model": "gpt-4o-mini", "price": PRICE}]},
            "claude": {"deployments": [{"name": "static-claude", "kind": "anthropic",
                                        "base_url": f"http://127.0.0.1:{up_port}", "model": "claude-bench",
                                        "price": PRICE}]},
        },
        "database": {"url": f"sqlite:///{workdir}/ledger.db"},
        "ledger": {"enabled": args.ledger == "on", "spool_dir": str(workdir / "spool")},
        **({"logging": {"access": True, "file": args.access_log}} if args.access_log else {}),
        **(governance.governed_sections() if args.governed else {}),
    }))
    gateway_key = governance.CALLING_KEY if args.governed else KEY
    skyrelay = [python, "-c", "import sys; from skyrelay.cli import main; sys.exit(main())"]
    gateway = subprocess.Popen([*pinned(0), *skyrelay, "serve", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    floor = subprocess.Popen([*pinned(0), python, str(HERE / "floor_proxy.py"), str(up_port), str(floor_port)],
                             stdout=subprocess.DEVNULL)
    try:
        wait_port(up_port)
        wait_port(gw_port)
        wait_port(floor_port)
        rows = []
        for label, path, body in WORKLOADS:
            if args.only and args.only not in label:
                continue
            floor_url = f"http://127.0.0.1:{floor_port}{path}"
            direct, via = f"http://127.0.0.1:{up_port}{path}", f"http://127.0.0.1:{gw_port}{path}"
            wrk(via, body, 1, args.connections, workdir, key=gateway_key)  # warm up pools, caches and branch predictors
            for conns in (args.connections, 1):
                d = wrk(direct, body, args.seconds, conns, workdir)
                cpu0, ship0 = cpu_seconds(gateway.pid), shipper_seconds(gw_port)
                g = wrk(via, body, args.seconds, conns, workdir, key=gateway_key)
                time.sleep(0.5)  # the shipper's last batch of this run
                cpu, ship = cpu_seconds(gateway.pid) - cpu0, shipper_seconds(gw_port) - ship0
                fcpu0 = cpu_seconds(floor.pid)
                f = wrk(floor_url, body, args.seconds, conns, workdir)
                fcpu = cpu_seconds(floor.pid) - fcpu0
                rows.append({"workload": label, "connections": conns, "direct": d, "gateway": g, "floor": f,
                             "cpu_us_per_request": cpu / max(g["requests"], 1) * 1e6,
                             "shipper_cpu_us_per_request": ship / max(g["requests"], 1) * 1e6,
                             "floor_cpu_us_per_request": fcpu / max(f["requests"], 1) * 1e6})
        return rows
    finally:
        for proc in (gateway, floor, upstream):
            proc.terminate()
            proc.wait(5)


def shipper_seconds(port: int) -> float:
    """CPU time the ledger's shipper thread has used (it reports it in /health/ready); 0 with the ledger off."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as reply:
        ledger = json.loads(reply.read()).get("ledger")
    return ledger["shipper_cpu_seconds"] if ledger else 0.0


def report(rows: list[dict]) -> str:
    lines = [
        "| workload | conns | direct req/s | gateway req/s | ratio | direct p50 | gateway p50 | added p50 | gateway p99 "
        "| gateway CPU/req | of which shipper | floor CPU/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, g = r["direct"], r["gateway"]
        lines.append(
            f"| {r['workload']} | {r['connections']} | {d['rps']:,.0f} | {g['rps']:,.0f} | {g['rps'] / d['rps']:.2f} "
            f"| {d['p50_ms']:.3f} ms | {g['p50_ms']:.3f} ms | {g['p50_ms'] - d['p50_ms']:.3f} ms | {g['p99_ms']:.3f} ms "
            f"| {r['cpu_us_per_request']:.1f} us | {r['shipper_cpu_us_per_request']:.1f} us "
            f"| {r['floor_cpu_us_per_request']:.1f} us | {g['errors']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", help="also write the raw numbers to this file")
    parser.add_argument("--access-log", help="turn the access log on, appending to this file (e.g. /dev/null)")
    parser.add_argument("--governed", action="store_true",
                        help="call with one of 300 declared keys (key and team limits, a budget: bench/governance.py)")
    parser.add_argument("--only", help="run only the workloads whose label contains this (e.g. messages)")
    parser.add_argument("--ledger", choices=("on", "off"), default="on",
                        help="the gateway's ledger (spool + shipper to SQLite in a temporary directory)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (Debian package 'wrk')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args, Path(tmp))
    print(report(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
