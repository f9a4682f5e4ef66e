"""skyrelay beside nginx (and optionally LiteLLM) in one run: what each hop costs on the same machine, same upstream.

Scenarios, each in the same run: direct to the static upstream; nginx `proxy_pass` (the floor of any hop); the floor
proxy on skyrelay's own HTTP stack; skyrelay with a minimal config; skyrelay with a realistic one (hundreds of keys,
key and team limits, a budget, quotas and tiers, metrics and the access log on, the ledger when the build has it);
skyrelay on translated routes (OpenAI in, Anthropic and Bedrock out); with --with-litellm, LiteLLM's proxy from PyPI
in its own venv, as installed and tuned. Proxies are pinned to core 0, upstreams and wrk to core 1. Loopback only,
bounded: a few seconds per measurement. Usage: python bench/compare.py [--seconds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_litellm import LITELLM_VERSION, start_litellm  # noqa: E402
from compare_upstreams import nginx_proxy_conf, nginx_upstream_conf  # noqa: E402
from gateway_overhead import CHAT, KEY, cpu_seconds, free_port, pinned, wait_port, wrk  # noqa: E402

CHUNKS = 20  # data events per stream (role preamble, 18 words, finish), as in static_upstream.STREAM
# The CPU/chunk column: (CPU per streamed request - CPU per whole request of the same route) / CHUNKS.
REALISTIC_KEYS = 300
CALLER = "sk-bench-key-7"


def gateway_config(port: int, nginx: int, python_up: int, realistic: bool, workdir: Path) -> dict:
    def openai(name, base, **extra):
        return {"name": name, "kind": "openai", "model": "gpt-4o-mini", "base_url": base, "api_key": "up", **extra}

    quota = {"rpm": 10_000_000, "tpm": 10_000_000_000} if realistic else {}
    price = {"price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}} if realistic else {}
    groups = {
        "chat": [openai("static", f"http://127.0.0.1:{nginx}/v1", **quota, **price)],
        "chat-stream": [openai("static-stream", f"http://127.0.0.1:{nginx}/stream/v1", **quota, **price)],
        "chat-trickle": [openai("trickle", f"http://127.0.0.1:{python_up}/trickle/v1", **quota, **price)],
        "claude": [{"name": "anthropic", "kind": "anthropic", "model": "claude-bench", "api_key": "up",
                    "base_url": f"http://127.0.0.1:{python_up}/anthropic", **quota, **price}],
        "nova": [{"name": "bedrock", "kind": "bedrock", "model": "amazon.nova-lite-v1:0", "region": "us-east-1",
                  "base_url": f"http://127.0.0.1:{python_up}/bedrock", "aws_access_key_id": "AKIDBENCH",
                  "aws_secret_access_key": "bench-secret", **quota, **price}],
    }
    if realistic:  # a spill tier behind each: the planner walks tiers on every request
        for name, deployments in groups.items():
            spare = dict(deployments[0], name=deployments[0]["name"] + "-spill", tier=1)
            deployments.append(spare)
    config: dict = {"server": {"host": "127.0.0.1", "port": port, "master_key": KEY},
                    "model_groups": {name: {"deployments": d} for name, d in groups.items()}}
    if realistic:
        config["teams"] = {f"team-{t}": {"rpm": 10_000_000, "tpm": 10_000_000_000,
                                         "budget": {"usd": 1_000_000, "period": "month"}} for t in range(10)}
        config["keys"] = [{"name": f"key-{k}", "key": f"sk-bench-key-{k}", "team": f"team-{k % 10}",
                           "rpm": 10_000_000, "tpm": 10_000_000_000, "budget": {"usd": 100_000, "period": "day"}}
                          for k in range(REALISTIC_KEYS)]
        config["logging"] = {"access": True, "file": str(workdir / "access.log")}
        ledger = _ledger_section(workdir)
        if ledger is not None:
            config.update(ledger)
    return config


def _ledger_section(workdir: Path) -> dict | None:
    """The ledger's configuration when this build has a ledger (older builds refuse the key)."""
    from skyrelay.config import ConfigError, parse_config

    candidate = {"database": {"url": f"sqlite:///{workdir}/ledger.db"}, "ledger": {"spool_dir": str(workdir / "spool")}}
    try:
        parse_config({"model_groups": {"x": {"deployments": [
            {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}}, **candidate})
    except (ConfigError, TypeError):
        return None
    return candidate


class Proc:
    """A started process with what the table reports about it: CPU, peak RSS, time to ready."""

    def __init__(self, argv: list[str], port: int, core: int, **kw):
        self.started = time.monotonic()
        self.popen = subprocess.Popen([*pinned(core), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      **kw)
        wait_port(port, 60)
        self.ready_s = time.monotonic() - self.started
        self.port = port

    def pids(self) -> list[int]:
        """The process and its children (LiteLLM and nginx masters fork workers)."""
        found = [self.popen.pid]
        for pid in list(found):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found += [int(c) for c in children]
        return found

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids() if Path(f"/proc/{pid}").exists())

    def peak_rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def workloads(via_gateway: bool) -> list[tuple[str, str, dict]]:
    """(label, path, body): a gateway picks the upstream by model group, plain proxies by path."""
    def path(p):
        return "/v1/chat/completions" if via_gateway else p
    return [
        ("chat", path("/v1/chat/completions"), CHAT),
        ("stream (20 chunks)", path("/stream/v1/chat/completions"),
         {**CHAT, "model": "chat-stream", "stream": True}),
        ("trickled stream", path("/trickle/v1/chat/completions"),
         {**CHAT, "model": "chat-trickle", "stream": True}),
    ]


TRANSLATED = [("OpenAI in, Anthropic out", {**CHAT, "model": "claude"}),
              ("OpenAI in, Anthropic out, stream", {**CHAT, "model": "claude", "stream": True}),
              ("OpenAI in, Bedrock out", {**CHAT, "model": "nova"}),
              ("OpenAI in, Bedrock out, stream", {**CHAT, "model": "nova", "stream": True})]


def measure_one(proc: Proc | None, url: str, body: dict, args, workdir: Path, key: str = KEY) -> dict:
    wrk(url, body, 1, args.connections, workdir, key=key)  # warm pools and caches
    row = {}
    for conns in (args.connections, 1):
        before = proc.cpu() if proc else 0.0
        result = wrk(url, body, args.seconds, conns, workdir, key=key)
        spent = (proc.cpu() - before) if proc else 0.0
        row[conns] = {**result, "cpu_us_per_request": spent / max(result["requests"], 1) * 1e6}
    return row


def run(args, workdir: Path) -> dict:
    python = sys.executable
    ports = {name: free_port() for name in ("nginx_up", "python_up", "nginx_proxy", "nginx_trickle", "floor",
                                            "floor_trickle", "minimal", "realistic", "litellm", "litellm_tuned")}
    (workdir / "up.conf").write_text(nginx_upstream_conf(ports["nginx_up"], workdir))
    (workdir / "proxy.conf").write_text(nginx_proxy_conf(ports["nginx_proxy"], ports["nginx_up"], workdir,
                                                                  ports["nginx_trickle"], ports["python_up"]))
    started: list[Proc] = []
    results: dict = {"scenarios": {}, "meta": {"seconds": args.seconds, "connections": args.connections}}

    def start(argv, port, core=0, **kw) -> Proc:
        proc = Proc(argv, port, core, **kw)
        started.append(proc)
        return proc

    try:
        start(["nginx", "-c", str(workdir / "up.conf"), "-p", str(workdir)], ports["nginx_up"], core=1)
        start([python, str(HERE / "compare_upstreams.py"), str(ports["python_up"])], ports["python_up"], core=1)
        nginx_proxy = start(["nginx", "-c", str(workdir / "proxy.conf"), "-p", str(workdir)], ports["nginx_proxy"])
        floor = start([python, str(HERE / "floor_proxy.py"), str(ports["nginx_up"]), str(ports["floor"])],
                      ports["floor"])
        floor_trickle = start([python, str(HERE / "floor_proxy.py"), str(ports["python_up"]),
                               str(ports["floor_trickle"])], ports["floor_trickle"])
        gateways = {}
        for name in ("minimal", "realistic"):
            config = workdir / f"{name}.json"
            config.write_text(json.dumps(gateway_config(ports[name], ports["nginx_up"], ports["python_up"],
                                                        name == "realistic", workdir)))
            gateways[name] = start([python, "-m", "skyrelay.cli", "serve", "--config", str(config)], ports[name])
        # (process measured, its port to nginx's static answers, its port to the Python upstream's trickle)
        plain = {"direct": (None, ports["nginx_up"], ports["python_up"]),
                 "nginx proxy_pass": (nginx_proxy, ports["nginx_proxy"], ports["nginx_trickle"]),
                 "floor proxy (skyrelay's HTTP stack)": (floor, ports["floor"], ports["floor_trickle"])}
        for scenario, (proc, port, trickle_port) in plain.items():
            rows = {}
            for label, path, body in workloads(False):
                trickled = label == "trickled stream"  # nginx cannot trickle: the Python upstream does
                measured = floor_trickle if trickled and proc is floor else proc
                target = trickle_port if trickled else port
                rows[label] = measure_one(measured, f"http://127.0.0.1:{target}{path}", body, args, workdir)
            results["scenarios"][scenario] = _with_meta(rows, proc)
        for name, proc in gateways.items():
            key = CALLER if name == "realistic" else KEY
            rows = {label: measure_one(proc, f"http://127.0.0.1:{proc.port}{path}", body, args, workdir, key=key)
                    for label, path, body in workloads(True)}
            if name == "minimal":
                for label, body in TRANSLATED:
                    rows[label] = measure_one(proc, f"http://127.0.0.1:{proc.port}/v1/chat/completions", body,
                                              args, workdir)
            results["scenarios"][f"skyrelay, {name} config"] = _with_meta(rows, proc)
        if args.with_litellm:
            for tuned in (False, True):
                port = ports["litellm_tuned" if tuned else "litellm"]
                proc = start_litellm(port, ports["nginx_up"], workdir, tuned, Proc)
                started.append(proc)
                label = f"LiteLLM {LITELLM_VERSION}{' (tuned)' if tuned else ''}"
                rows = {"chat": measure_one(proc, f"http://127.0.0.1:{port}/v1/chat/completions", CHAT, args,
                                            workdir)}
                results["scenarios"][label] = _with_meta(rows, proc)
                proc.stop()
    finally:
        for proc in reversed(started):
            proc.stop()
    return results


def _with_meta(rows: dict, proc: Proc | None) -> dict:
    return {"rows": rows, "peak_rss_mb": proc.peak_rss_mb() if proc else None,
            "ready_s": proc.ready_s if proc else None}


def report(results: dict, connections: int) -> str:
    scenarios = results["scenarios"]
    nginx = scenarios.get("nginx proxy_pass", {}).get("rows", {}).get("chat", {}).get(connections)
    sky = scenarios.get("skyrelay, realistic config", {}).get("rows", {}).get("chat", {}).get(connections)
    lines = [f"| scenario | workload | req/s @{connections} | p50 @1 | p99 @1 | p50 @{connections} | p99 @{connections} "
             "| CPU/req | CPU/chunk | vs nginx | peak RSS | ready |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for scenario, data in scenarios.items():
        whole = data["rows"].get("chat", {}).get(connections, {}).get("cpu_us_per_request", 0.0)
        for label, row in data["rows"].items():
            many, one = row[connections], row[1]
            cpu = many["cpu_us_per_request"]
            # Per chunk: what a stream costs beyond a whole answer, over its chunks (the request's own share out).
            base = whole if "Anthropic" not in label and "Bedrock" not in label else \
                data["rows"].get(label.removesuffix(", stream"), {}).get(connections, {}).get("cpu_us_per_request", 0)
            per_chunk = f"{max(cpu - base, 0) / CHUNKS:.1f} us" if "stream" in label and cpu else ""
            ratio = f"{cpu / nginx['cpu_us_per_request']:.1f}x" if nginx and cpu and nginx["cpu_us_per_request"] \
                and label == "chat" else ""
            rss = f"{data['peak_rss_mb']:.0f} MB" if data["peak_rss_mb"] else ""
            ready = f"{data['ready_s']:.2f} s" if data["ready_s"] else ""
            lines.append(f"| {scenario} | {label} | {many['rps']:,.0f} | {one['p50_ms']:.3f} ms | {one['p99_ms']:.3f} ms "
                         f"| {many['p50_ms']:.3f} ms | {many['p99_ms']:.3f} ms | {cpu:.0f} us | {per_chunk} | {ratio} "
                         f"| {rss} | {ready} |")
    for scenario, data in scenarios.items():
        if scenario.startswith("LiteLLM") and sky:
            theirs = data["rows"]["chat"][connections]["cpu_us_per_request"]
            lines.append(f"\n{scenario} / skyrelay realistic, CPU per request: {theirs / sky['cpu_us_per_request']:.0f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--with-litellm", action="store_true",
                        help=f"also LiteLLM's proxy {LITELLM_VERSION}, installed in its own venv on first use")
    parser.add_argument("--json", help="also write the raw numbers to this file")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            print(f"{tool} is needed (Debian package '{tool}'; `make bench-compare` installs it)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    print(report(results, args.connections))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
