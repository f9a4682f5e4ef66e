"""bench/compare.py's own arithmetic and counting, so the table it prints stays right: connections counted per
process from /proc, CPU per chunk taken against the whole answer of the same route, ratios and targets. No timing."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
compare_probes = pytest.importorskip("compare_probes")
compare_report = pytest.importorskip("compare_report")
compare_layers = pytest.importorskip("compare_layers")


def test_established_connections_are_counted_for_the_process_holding_the_server_side():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in clients]
    try:
        # The client ends are on another local port: only the 3 accepted ones count, all held by this process.
        assert compare_probes.established_per_pid(port, [os.getpid()]) == {os.getpid(): 3}
        accepted[0].close()
        clients[0].close()
        assert compare_probes.established_per_pid(port, [os.getpid()])[os.getpid()] == 2
    finally:
        for sock in [*clients, *accepted, listener]:
            sock.close()


def _row(cpu_us: float, p50_ms: float = 0.1, **extra) -> dict:
    figures = {"rps": 1000.0, "requests": 1000, "p50_ms": p50_ms, "p99_ms": 1.0, "errors": 0,
               "cpu_us_per_request": cpu_us}
    return {32: figures, 1: dict(figures), "chunks": 0, "base": "chat", **extra}


def _results() -> dict:
    def scenario(rows, rss=None, ready=None):
        return {"rows": rows, "peak_rss_mb": rss, "ready_s": ready}

    return {"scenarios": {
        "direct": scenario({"chat": _row(0, 0.02)}),
        "nginx proxy_pass": scenario({"chat": _row(20, 0.15)}, 9, 0.05),
        "floor proxy (skyrelay's HTTP stack)": scenario({"chat": _row(40)}, 25, 0.1),
        "skyrelay, realistic config": scenario({
            "chat": _row(60, 0.2),
            "trickled stream": _row(60 + 22 * 8, chunks=22)}, 55, 0.4),
        "LiteLLM 1.108.7": scenario({"chat": _row(9000, 12.0)}, 480, 6.0),
    }}


def test_ratios_and_targets_come_from_the_same_run():
    text, ratios = compare_report.report(_results(), 32)
    assert ratios["CPU/req chat: skyrelay, realistic config / nginx proxy_pass"] == pytest.approx(3.0)
    assert ratios["CPU/req chat: skyrelay, realistic config / floor proxy (skyrelay's HTTP stack)"] == \
        pytest.approx(1.5)
    assert ratios["CPU/req chat: LiteLLM 1.108.7 / skyrelay, realistic config"] == pytest.approx(150)
    assert ratios["added p50 @1 chat: skyrelay, realistic config / LiteLLM 1.108.7"] == pytest.approx(0.18 / 11.98)
    assert "realistic CPU per pass-through chunk (trickled): 8 us, target <= 10 us: met" in text
    assert "realistic added p50 @1, chat: 0.18 ms, target <= 0.2 ms: met" in text
    assert "realistic chat req/s @32 on one core: 1e+03, target >= 14000: NOT met" in text
    assert "time to first byte of a stream: not measured" in text


def test_cpu_per_chunk_is_what_the_stream_costs_beyond_the_whole_answer():
    scenarios = _results()["scenarios"]
    assert compare_report.per_chunk_us(scenarios, "skyrelay, realistic config", "trickled stream", 32) == \
        pytest.approx(8.0)
    assert compare_report.per_chunk_us(scenarios, "skyrelay, realistic config", "chat", 32) is None


PERF_REPORT = """# Samples: 12K of event 'cpu-clock:pppH'
#
# Overhead  Shared Object
# ........  ..................
#
    65.12%  libpython3.11.so.1.0
    20.19%  [kernel.kallsyms]
     4.31%  libc.so.6
     2.65%  libsqlite3.so.0.8.6
     2.59%  loop.cpython-311-x86_64-linux-gnu.so
     2.51%  orjson.cpython-311-x86_64-linux-gnu.so
     1.47%  parser.cpython-311-x86_64-linux-gnu.so
     0.38%  _asyncio.cpython-311-x86_64-linux-gnu.so
     0.29%  [vdso]
     0.20%  _sqlite3.cpython-311-x86_64-linux-gnu.so
     0.04%  _bisect.cpython-311-x86_64-linux-gnu.so
"""


def test_perf_samples_are_summed_by_layer_and_priced_at_the_cpu_measured_without_perf():
    shares = compare_layers.by_layer(PERF_REPORT)
    kernel, python, loop, parser, json, sqlite, libc = (name for name, _ in compare_layers.LAYERS[:7])
    assert shares[kernel] == pytest.approx(0.2019) and shares[python] == pytest.approx(0.6512)
    assert shares[loop] == pytest.approx(0.0297) and shares[sqlite] == pytest.approx(0.0285)
    assert shares[libc] == pytest.approx(0.0460) and shares[compare_layers.OTHER] == pytest.approx(0.0004)
    assert shares[parser] == pytest.approx(0.0147) and shares[json] == pytest.approx(0.0251)
    table = compare_layers.layers_report({"realistic": shares}, {"realistic": 150.0})
    assert f"| {kernel} | 30.3 us (20%) |" in table and "| total | 150.0 us |" in table
    assert "nginx" not in table.split("| total")[0].split("| layer")[1]  # a layer no scenario has is left out
