"""skyrelay beside nginx (and optionally LiteLLM) in one run: what each hop costs on the same machine, same upstream.

Scenarios, each in the same run: direct to the static upstream; nginx `proxy_pass` (the floor of any hop); the floor
proxy on skyrelay's own HTTP stack; skyrelay with a minimal config; skyrelay with a realistic one (hundreds of keys,
key and team limits, a budget, quotas and tiers, metrics and the access log on, the ledger when the build has it);
skyrelay on translated routes (OpenAI in, Anthropic and Bedrock out, whole, streamed and trickled); with
--with-litellm, LiteLLM's proxy from PyPI in its own venv, as installed and tuned; with --workers-scaling, the
realistic config under `serve --workers 1` and `--workers 2` on every core, with the connections' spread over the
workers; with --layers, where the CPU of nginx, the floor proxy and both configs goes, by layer (compare_layers.py:
Linux's perf). Proxies are pinned to core 0, upstreams, wrk and the first-byte probe to core 1. Loopback only,
bounded: a few seconds per measurement. Usage: python bench/compare.py [--seconds 3] [--json out.json]
[--with-litellm] [--workers-scaling] [--layers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare_layers  # noqa: E402
from compare_litellm import LITELLM_VERSION, start_litellm  # noqa: E402
from compare_probes import Proc, first_answer_s, first_byte_ms  # noqa: E402
from compare_report import report  # noqa: E402
from compare_upstreams import anthropic_answers, bedrock_answers, nginx_proxy_conf, nginx_upstream_conf  # noqa: E402
from compare_workers import measure_workers, report as workers_report  # noqa: E402
from gateway_overhead import CHAT, KEY, free_port, wrk  # noqa: E402
from static_upstream import STREAM  # noqa: E402

REALISTIC_KEYS = 300
# LiteLLM serves ~100 req/s on a quiet core: 32 requests in flight take ~0.3 s each, and more on a loaded machine,
# so a 2 s measurement holds too few answers to time. It is measured this long at least.
LITELLM_SECONDS = 10
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
    }
    for prefix, tag in (("", ""), ("/trickle", "-trickle")):  # Anthropic and Bedrock out, streamed and trickled
        groups["claude" + tag] = [{"name": "anthropic" + tag, "kind": "anthropic", "model": "claude-bench",
                                   "api_key": "up", "base_url": f"http://127.0.0.1:{python_up}{prefix}/anthropic",
                                   **quota, **price}]
        groups["nova" + tag] = [{"name": "bedrock" + tag, "kind": "bedrock", "model": "amazon.nova-lite-v1:0",
                                 "region": "us-east-1", "base_url": f"http://127.0.0.1:{python_up}{prefix}/bedrock",
                                 "aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench-secret",
                                 **quota, **price}]
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


@dataclass(frozen=True)
class Workload:
    label: str
    model: str  # the gateway's model group (a gateway routes by model, a plain proxy by path)
    path: str = "/v1/chat/completions"  # the plain proxies' path
    chunks: int = 0  # a stream's upstream events
    base: str = "chat"  # the whole answer on the same route: CPU/chunk is (CPU of this - CPU of base) / chunks

    def body(self) -> dict:
        return {**CHAT, "model": self.model, **({"stream": True} if self.chunks else {})}


STREAMED = "stream (20 chunks)"  # the static stream: its time to first byte is probed too
TRICKLED = "trickled stream"
PLAIN = [Workload("chat", "chat"),
         Workload(STREAMED, "chat-stream", "/stream/v1/chat/completions", len(STREAM)),
         Workload(TRICKLED, "chat-trickle", "/trickle/v1/chat/completions", len(STREAM))]


def _translated(name: str, model: str, events: int) -> list[Workload]:
    whole = f"OpenAI in, {name} out"
    return [Workload(whole, model, base=whole), Workload(f"{whole}, stream", model, chunks=events, base=whole),
            Workload(f"{whole}, {TRICKLED}", f"{model}-trickle", chunks=events, base=whole)]


TRANSLATED = [*_translated("Anthropic", "claude", len(anthropic_answers()[1])),
              *_translated("Bedrock", "nova", len(bedrock_answers()[1]))]


def measure_one(proc: Proc | None, port: int, work: Workload, args, workdir: Path, via_gateway: bool,
                key: str = KEY, seconds: float | None = None) -> dict:
    path = "/v1/chat/completions" if via_gateway else work.path
    url = f"http://127.0.0.1:{port}{path}"
    body = work.body()
    row: dict = {"chunks": work.chunks, "base": work.base, "first_answer_s": first_answer_s(port, path, body, key)}
    wrk(url, body, 1, args.connections, workdir, key=key)  # warm pools and caches
    for conns in (args.connections, 1):
        if proc:
            proc.settle()
        before = proc.cpu() if proc else 0.0
        result = wrk(url, body, seconds or args.seconds, conns, workdir, key=key)
        if proc:  # the answers wrk left in flight, and the ledger's last batch, are the run's too
            proc.settle()
        spent = (proc.cpu() - before) if proc else 0.0
        row[conns] = {**result, "cpu_us_per_request": spent / max(result["requests"], 1) * 1e6}
    if work.label == STREAMED:
        row["first_byte"] = first_byte_ms(port, path, body, key)
    return row


def run(args, workdir: Path) -> dict:
    python = sys.executable
    ports = {name: free_port() for name in ("nginx_up", "python_up", "nginx_proxy", "nginx_trickle", "floor",
                                            "floor_trickle", "minimal", "realistic")}
    (workdir / "up.conf").write_text(nginx_upstream_conf(ports["nginx_up"], workdir))
    (workdir / "proxy.conf").write_text(nginx_proxy_conf(ports["nginx_proxy"], ports["nginx_up"], workdir,
                                                         ports["nginx_trickle"], ports["python_up"]))
    started: list[Proc] = []
    results: dict = {"scenarios": {}, "meta": {"seconds": args.seconds, "connections": args.connections,
                                               "cores": os.cpu_count(), "litellm_version": LITELLM_VERSION}}

    def start(argv, port, core=0, **kw) -> Proc:
        proc = Proc(argv, port, core, **kw)
        started.append(proc)
        return proc

    def gateway(name: str, port: int, realistic: bool) -> Path:
        """A gateway's configuration file, in a directory of its own (the defaults' ./.skyrelay land there)."""
        home = workdir / name
        home.mkdir(exist_ok=True)
        config = gateway_config(port, ports["nginx_up"], ports["python_up"], realistic, home)
        (home / "gateway.json").write_text(json.dumps(config))
        return home / "gateway.json"

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
            config = gateway(name, ports[name], name == "realistic")
            gateways[name] = start([python, "-m", "skyrelay.cli", "serve", "--config", str(config)], ports[name],
                                   cwd=config.parent)
        # (process measured, its port to nginx's static answers, its port to the Python upstream's trickle)
        plain = {"direct": (None, ports["nginx_up"], ports["python_up"]),
                 "nginx proxy_pass": (nginx_proxy, ports["nginx_proxy"], ports["nginx_trickle"]),
                 "floor proxy (skyrelay's HTTP stack)": (floor, ports["floor"], ports["floor_trickle"])}
        for scenario, (proc, port, trickle_port) in plain.items():
            rows = {}
            for work in PLAIN:
                trickled = work.label == TRICKLED  # nginx cannot trickle: the Python upstream does
                measured = floor_trickle if trickled and proc is floor else proc
                rows[work.label] = measure_one(measured, trickle_port if trickled else port, work, args, workdir,
                                               via_gateway=False)
            results["scenarios"][scenario] = _with_meta(rows, proc)
        for name, proc in gateways.items():
            key = CALLER if name == "realistic" else KEY
            rows = {work.label: measure_one(proc, proc.port, work, args, workdir, True, key=key)
                    for work in PLAIN + (TRANSLATED if name == "minimal" else [])}
            results["scenarios"][f"skyrelay, {name} config"] = _with_meta(rows, proc)
        if args.layers:
            results["layers"] = profile_layers({"nginx proxy_pass": (nginx_proxy, ports["nginx_proxy"], KEY),
                                                "floor proxy (skyrelay's HTTP stack)": (floor, ports["floor"], KEY),
                                                **{f"skyrelay, {name} config": (proc, proc.port,
                                                                                CALLER if name == "realistic" else KEY)
                                                   for name, proc in gateways.items()}}, args, workdir)
        if args.with_litellm:
            for tuned in (False, True):
                port = free_port()  # chosen now: minutes after the others, on a machine others share
                proc = start_litellm(port, ports["nginx_up"], workdir, tuned, Proc)
                started.append(proc)
                label = f"LiteLLM {LITELLM_VERSION}{' (tuned)' if tuned else ''}"
                rows = {work.label: measure_one(proc, port, work, args, workdir, True,
                                                seconds=max(args.seconds, LITELLM_SECONDS)) for work in PLAIN[:2]}
                results["scenarios"][label] = _with_meta(rows, proc)
                proc.stop()
        if args.workers_scaling:
            def config_for(name: str, count: int) -> tuple[Path, int]:
                port = free_port()
                return gateway(f"{name}-{count}-workers", port, name == "realistic"), port
            results["workers"] = measure_workers(config_for, args, workdir, PLAIN[0].body(),
                                                 {"minimal": KEY, "realistic": CALLER})
    finally:
        for proc in reversed(started):
            proc.stop()
    return results


def profile_layers(measured: dict[str, tuple[Proc, int, str]], args, workdir: Path) -> dict[str, dict[str, float]]:
    """`--layers`: each scenario's chat workload once more at full load, under perf (compare_layers.py)."""
    chat = PLAIN[0]
    found = {}
    for scenario, (proc, port, key) in measured.items():
        proc.settle()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        found[scenario] = compare_layers.shares(
            proc.pids(), partial(wrk, url, chat.body(), args.seconds, args.connections, workdir, key=key),
            args.seconds, workdir)
    return found


def _with_meta(rows: dict, proc: Proc | None) -> dict:
    return {"rows": rows, "peak_rss_mb": proc.peak_rss_mb() if proc else None,
            "ready_s": proc.ready_s if proc else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--with-litellm", action="store_true",
                        help=f"also LiteLLM's proxy {LITELLM_VERSION}, installed in its own venv on first use")
    parser.add_argument("--workers-scaling", action="store_true",
                        help="also the realistic config under --workers 1 and 2, every core, connection spread")
    parser.add_argument("--layers", action="store_true",
                        help="also where each proxy's CPU goes, by layer (needs Linux's perf: Debian's linux-perf)")
    parser.add_argument("--json", help="also write the raw numbers (and the ratios) to this file")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            print(f"{tool} is needed (Debian package '{tool}'; `make bench-compare` installs it)", file=sys.stderr)
            return 2
    if args.layers and (why := compare_layers.unavailable()):
        print(f"--layers: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    text, results["ratios"] = report(results, args.connections)
    print(text)
    if "workers" in results:
        print("\n" + workers_report(results["workers"], args.connections))
    if "layers" in results:
        cpu = {scenario: results["scenarios"][scenario]["rows"][PLAIN[0].label][args.connections]["cpu_us_per_request"]
               for scenario in results["layers"]}
        print("\n" + compare_layers.layers_report(results["layers"], cpu))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
