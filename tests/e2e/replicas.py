"""Helpers of the multi-replica tests: `skyrelay serve` processes on one Redis, a Redis of a test's own (to stop
and start again), and a storm of concurrent requests spread over the replicas."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import openai

from .harness import HELLO
from .test_examples import skyrelay, stop, wait_for_line


@contextlib.contextmanager
def serve_replicas(config: Path, count: int):
    """`count` gateway processes serving `config` (which must give each its own port: `port: 0`); their base
    URLs. Each must exit cleanly when stopped."""
    procs = [skyrelay("serve", "--config", str(config)) for _ in range(count)]
    try:
        yield [re.search(r"http://[\d.]+:\d+", wait_for_line(proc, r"listening on")).group(0) for proc in procs]
    finally:
        codes, stuck = [], []
        for proc in procs:  # every one, even after one did not stop: none is left running past the test
            try:
                codes.append(stop(proc))
            except AssertionError as exc:
                stuck.append(str(exc))
    assert not stuck, "\n\n".join(stuck)
    assert codes == [0] * count, codes


async def storm(urls: list[str], keys: list[str], total: int, max_tokens: int = 5, model: str = "chat",
                concurrency: int | None = None) -> tuple[int, list]:
    """`total` requests spread over the replicas (and keys), all at once or `concurrency` at a time; how many
    succeeded, and the refusals (429s)."""
    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)
               for url in urls for key in keys]
    gate = asyncio.Semaphore(concurrency or total)

    async def one(n: int):
        async with gate:
            try:
                await clients[n % len(clients)].chat.completions.create(model=model, messages=HELLO,
                                                                        max_tokens=max_tokens)
                return None
            except openai.RateLimitError as exc:
                return exc

    outcomes = await asyncio.gather(*(one(n) for n in range(total)))
    for client in clients:
        await client.close()
    refusals = [o for o in outcomes if o is not None]
    return total - len(refusals), refusals


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """redis-server on a free port in a temporary directory, nothing kept on disk; never the shared one."""

    def __init__(self):
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="skyrelay-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
