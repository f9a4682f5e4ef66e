"""Where a proxy's CPU goes, by layer, for `bench/compare.py --layers`: Linux's `perf record` (Debian's package
`linux-perf`) samples the process during one more wrk run of the chat workload at 32 connections, the samples are
summed by the binary they fell in (the kernel, CPython's interpreter, uvloop, httptools, orjson, SQLite, libc,
nginx), and each layer's share times the CPU per request of the run measured without perf gives microseconds per
request per layer. A run of its own: sampling costs the process CPU of its own, so the table's CPU figures never
come from it. CPython 3.11 does not show its Python functions to perf: which of our modules the interpreter's share
is spent in is `py-spy`'s to tell (docs/performance.md says how).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

SAMPLE_HZ = 1999
# (layer, patterns of the binaries whose samples it sums), first match wins; what none names is "other".
LAYERS = (
    ("kernel (system calls, TCP on loopback, scheduling)", ("[kernel",)),
    ("CPython interpreter (every Python line: ours, the HTTP server and client, asyncio)", ("libpython", "python3")),
    ("event loop (uvloop, asyncio's C parts)", ("loop.cpython", "_asyncio.cpython")),
    ("HTTP parsing (httptools)", ("parser.cpython", "url_parser.cpython")),
    ("JSON (orjson)", ("orjson",)),
    ("ledger's SQLite", ("libsqlite3", "_sqlite3")),
    ("libc (malloc, memcpy, clock)", ("libc.so", "libm.so", "[vdso]", "ld-linux")),
    ("nginx", ("nginx",)),
)
OTHER = "other"
_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S.*?)\s*$")


def unavailable() -> str | None:
    """Why perf cannot profile here (None: it can)."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian package 'linux-perf')"
    probe = subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "perf cannot record here: " + (probe.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


def shares(pids: list[int], load: Callable[[], object], seconds: float, workdir: Path) -> dict[str, float]:
    """Each layer's share (0-1) of the samples of `pids` while `load` runs (for about `seconds`)."""
    data = workdir / "perf.data"
    recorder = subprocess.Popen(
        ["perf", "record", "-q", "-F", str(SAMPLE_HZ), "-p", ",".join(map(str, pids)), "-o", str(data), "--",
         "sleep", f"{seconds + 0.5:.1f}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # perf attached before the load begins
    load()
    recorder.wait(seconds + 30)
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "dso", "--percent-limit", "0",
                             "-g", "none"], capture_output=True, text=True, check=True).stdout
    data.unlink(missing_ok=True)
    return by_layer(report)


def by_layer(report: str) -> dict[str, float]:
    """`perf report --sort dso`'s lines ("  65.62%  libpython3.11.so.1.0") summed by layer, as shares."""
    found: dict[str, float] = {}
    for line in report.splitlines():
        matched = _LINE.match(line)
        if matched:
            layer = _layer(matched.group(2))
            found[layer] = found.get(layer, 0.0) + float(matched.group(1)) / 100
    return found


def _layer(binary: str) -> str:
    for layer, patterns in LAYERS:
        if any(pattern in binary for pattern in patterns):
            return layer
    return OTHER


def layers_report(layers: dict[str, dict], cpu: dict[str, float]) -> str:
    """The table: a row per layer, a column per profiled scenario, microseconds per request (share x `cpu`, the
    scenario's CPU per request measured without perf)."""
    scenarios = list(layers)
    names = [layer for layer, _ in LAYERS] + [OTHER]
    lines = ["CPU per request by layer, chat at 32 connections (perf record; us = share x the CPU/req measured "
             "without perf):", "", "| layer | " + " | ".join(scenarios) + " |",
             "|---|" + "---|" * len(scenarios)]
    for name in names:
        if not any(layers[s].get(name) for s in scenarios):
            continue
        cells = [f"{layers[s].get(name, 0.0) * cpu[s]:.1f} us ({layers[s].get(name, 0.0):.0%})" for s in scenarios]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{cpu[s]:.1f} us" for s in scenarios) + " |")
    return "\n".join(lines)
