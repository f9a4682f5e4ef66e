"""Figures `bench/compare.py` takes beside wrk's: a process's CPU, peak RSS and time to ready, the time to the
first byte of a stream (wrk only times whole answers), and how a port's established connections are spread over
processes (from /proc, not from the gateway's own account, so a worker that hoards connections cannot hide it)."""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from gateway_overhead import cpu_seconds, pinned, wait_port



class Proc:
    """A started process with what the table reports about it: CPU, peak RSS, time to ready. `core` None: not
    pinned (the workers of `serve --workers N` use every core)."""

    def __init__(self, argv: list[str], port: int, core: int | None, **kw):
        self.started = time.monotonic()
        prefix = pinned(core) if core is not None else []
        self.popen = subprocess.Popen([*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.port = port
        self._wait_listening(90)
        self.ready_s = time.monotonic() - self.started

    def _wait_listening(self, timeout: float) -> None:
        """Until this process (or a child) listens on the port: on a shared machine another program may take a
        port between its choice and our start, and a connection alone would measure that program."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.popen.args} exited with {self.popen.returncode} before listening")
            if any(sockets_per_pid(self.port, self.pids(), "0A").values()):
                wait_port(self.port, 5)
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.popen.args} does not listen on {self.port} after {timeout:.0f} s")

    def children(self) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text().split()]
        except OSError:
            return []

    def pids(self) -> list[int]:
        """The process and its children (LiteLLM, nginx masters and `serve --workers` supervisors fork workers)."""
        return [self.popen.pid, *self.children()]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids() if Path(f"/proc/{pid}").exists())

    def settle(self, most_s: float = 3.0) -> None:
        """Wait until the process is idle (under 2 ms of CPU in 200 ms), at most `most_s`: what wrk left in flight
        when it stopped, and a ledger's batch behind it, are served before the next measurement starts."""
        deadline = time.monotonic() + most_s
        last = self.cpu()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.cpu()
            if now - last < 0.002:
                return
            last = now

    def peak_rss_mb(self, pid: int | None = None) -> float:
        """Peak RSS of one process, or of the process and its children together."""
        total = 0
        for each in [pid] if pid else self.pids():
            try:
                for line in Path(f"/proc/{each}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


FIRST_BYTE_REQUESTS = 400  # sequential requests on one keep-alive connection, after a warm-up
FIRST_BYTE_SECONDS = 4.0  # at most, for the warm-up and again for the measurement (a slow proxy gets fewer)


def first_answer_s(port: int, path: str, body: dict, key: str) -> float:
    """Seconds the first request takes, alone: a proxy that imports its providers on first use (LiteLLM) answers it
    late, and a load of 32 such first requests at once would leave wrk's measurement empty. Also the check that
    the route answers 200 before it is measured."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.monotonic()
    try:
        conn.request("POST", path, json.dumps(body).encode(),
                     {"content-type": "application/json", "authorization": f"Bearer {key}"})
        answer = conn.getresponse()
        text = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise RuntimeError(f"{path} on :{port} answered {answer.status}: {text[:300]!r}")
    return time.monotonic() - started


def first_byte_ms(port: int, path: str, body: dict, key: str) -> dict:
    """Median and p90 milliseconds from sending a request to the first byte of its answer's body (a server may send
    a stream's head before its first chunk: the body's first byte is what a client waits for), the rest read to
    the end before the next request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    affinity = os.sched_getaffinity(0)
    if len(affinity) >= 2:
        os.sched_setaffinity(0, {1})  # beside wrk and the upstreams, off the proxies' core 0
    try:
        _first_bytes(conn, path, payload, headers, FIRST_BYTE_REQUESTS // 4)  # warm-up
        samples = sorted(_first_bytes(conn, path, payload, headers, FIRST_BYTE_REQUESTS))
    finally:
        conn.close()
        os.sched_setaffinity(0, affinity)
    return {"p50_ms": statistics.median(samples), "p90_ms": samples[int(len(samples) * 0.9)],
            "requests": len(samples)}


def _first_bytes(conn, path: str, payload: bytes, headers: dict, requests: int) -> list[float]:
    samples = []
    deadline = time.monotonic() + FIRST_BYTE_SECONDS
    while len(samples) < requests and time.monotonic() < deadline:
        started = time.perf_counter_ns()
        conn.request("POST", path, payload, headers)
        answer = conn.getresponse()
        answer.read(1)
        samples.append((time.perf_counter_ns() - started) / 1e6)
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"first-byte probe on {path} answered {answer.status}")
    return samples


def established_per_pid(port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections to local `port` each process holds (server side only)."""
    return sockets_per_pid(port, pids, "01")


def sockets_per_pid(port: int, pids: list[int], state: str) -> dict[int, int]:
    """How many TCP sockets on local `port` in `state` ("01" established, "0A" listening) each process holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        held = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    held += 1
        except OSError:
            pass
        counts[pid] = held
    return counts
