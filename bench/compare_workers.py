"""`bench/compare.py --workers-scaling`: the minimal and the realistic config under `serve --workers 1` and
`--workers 2`, unpinned (every core), same run: requests/s and its scaling, CPU per request of all the gateway's
processes together and of the supervisor alone (it holds the key and team counters: with the realistic config every
request makes round trips to it), peak RSS per worker, and how the keep-alive connections are spread over the
workers.

Two spreads are counted from /proc, never from the workers' own account: wrk's keep-alive connections per worker,
sampled halfway through the 32-connection run (a worker taking every keep-alive connection while the others idle
is a known failure of other Python gateways), and which worker answers each of a few hundred new connections.
On a 2-core machine wrk and the upstream share the cores with the workers, so the scaling is bounded well below 2x.
"""

from __future__ import annotations

import collections
import http.client
import json
import sys
import threading
import time
from pathlib import Path

from compare_probes import Proc, established_per_pid, sockets_per_pid
from gateway_overhead import cpu_seconds, wrk

NEW_CONNECTIONS = 300


def measure_workers(config_for, args, workdir: Path, body: dict, keys: dict[str, str]) -> dict:
    """`config_for(name, count)`: (the configuration file, its port) of the gateway with configuration `name` and
    `count` workers, with a ledger and logs of its own; `keys`: the key to call each configuration with."""
    results = {}
    for name, key in keys.items():
        runs = results[name] = {}
        for count in (1, 2):
            config, port = config_for(name, count)
            argv = [sys.executable, "-m", "skyrelay.cli", "serve", "--config", str(config), "--port", str(port),
                    "--workers", str(count)]
            proc = Proc(argv, port, None, cwd=config.parent)
            try:
                runs[count] = _measure(proc, count, args, workdir, body, key)
            finally:
                proc.stop()
        runs["scaling"] = runs[2]["rps"] / runs[1]["rps"] if runs[1]["rps"] else None
    return results


def _measure(proc: Proc, count: int, args, workdir: Path, body: dict, key: str) -> dict:
    url = f"http://127.0.0.1:{proc.port}/v1/chat/completions"
    workers = _all_listening(proc, count) if count > 1 else [proc.popen.pid]
    wrk(url, body, 1, args.connections, workdir, key=key, core=None)  # warm up
    sampled: dict = {}
    sampler = threading.Timer(args.seconds / 2, lambda: sampled.update(established_per_pid(proc.port, workers)))
    proc.settle()
    before, supervisor_before = proc.cpu(), cpu_seconds(proc.popen.pid)
    sampler.start()
    result = wrk(url, body, args.seconds, args.connections, workdir, key=key, core=None)
    sampler.join()
    proc.settle()
    spent, supervisor = proc.cpu() - before, cpu_seconds(proc.popen.pid) - supervisor_before
    per_request = 1e6 / max(result["requests"], 1)
    return {**result, "ready_s": proc.ready_s, "cpu_us_per_request": spent * per_request,
            "supervisor_cpu_us_per_request": supervisor * per_request if count > 1 else 0.0,
            "peak_rss_mb_per_worker": [round(proc.peak_rss_mb(pid), 1) for pid in workers],
            "keepalive_connections_per_worker": [sampled.get(pid, 0) for pid in workers],
            "new_connections_per_worker": _answering(proc.port, workers)}


def _all_listening(proc: Proc, count: int, timeout: float = 60.0) -> list[int]:
    """The workers' pids once every one of them listens: the port opens with the first, and wrk's connections made
    before the second listens would all land on the first (a spread the kernel did not choose)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = proc.children()
        listening = sockets_per_pid(proc.port, workers, "0A")
        if len(workers) == count and all(listening.values()):
            return workers
        time.sleep(0.1)
    raise RuntimeError(f"not all {count} workers listen on {proc.port} after {timeout:.0f} s")


def _answering(port: int, workers: list[int]) -> list[int]:
    """Which worker (by its pid in /health/ready) answers each of NEW_CONNECTIONS new connections."""
    seen = collections.Counter()
    for _ in range(NEW_CONNECTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health/ready")
        seen[json.loads(conn.getresponse().read())["pid"]] += 1
        conn.close()
    return [seen.get(pid, 0) for pid in workers]


def report(results: dict, connections: int) -> str:
    lines = [f"| config | --workers | req/s @{connections} | p50 @{connections} | p99 @{connections} "
             "| CPU/req (all processes) | of which supervisor | peak RSS per worker "
             "| wrk's keep-alive connections per worker | new connections per worker | ready | errors |",
             "|" + "---|" * 12]
    for name, runs in results.items():
        for count in (1, 2):
            row = runs[count]
            lines.append(
                f"| {name} | {count} | {row['rps']:,.0f} | {row['p50_ms']:.3f} ms | {row['p99_ms']:.3f} ms "
                f"| {row['cpu_us_per_request']:.0f} us | {row['supervisor_cpu_us_per_request']:.0f} us "
                f"| {_join(row['peak_rss_mb_per_worker'], ' MB')} | {_join(row['keepalive_connections_per_worker'])} "
                f"| {_join(row['new_connections_per_worker'])} | {row['ready_s']:.2f} s | {row['errors']} |")
    lines.append("")
    lines += [f"{name}: --workers 2 / --workers 1, requests/s: {runs['scaling']:.2f}x"
              for name, runs in results.items() if runs.get("scaling")]
    return "\n".join(lines)


def _join(values: list, unit: str = "") -> str:
    return " / ".join(f"{v:g}{unit}" for v in values)
