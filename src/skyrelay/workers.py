"""`skyrelay serve --workers N`: N gateway processes on one port (SO_REUSEPORT) under a supervisor.

The supervisor validates the configuration once, keeps the port, holds the key and team counters for every worker
(state/local.py: limits and budgets stay exact across workers without Redis), restarts a worker that dies, and
forwards SIGHUP (reload) and SIGTERM (drain) to all of them. Routing quotas (a deployment's rpm, tpm,
max_concurrency) are kept per worker, each worker taking its exact integer share of each (`worker_share`), so the
workers together never send a deployment more than its quota; the price is that one busy worker may spill to the
next tier while another still has a little of its share left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import tempfile
import time

from .state import WORKERS_ENV
from .state.local import SOCKET_ENV, StateServer
from .telemetry.peers import PEERS_ENV

log = logging.getLogger("skyrelay.workers")
WORKER_ENV = "SKYRELAY_WORKER"  # "index/count", set for each worker
RESTART_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # a worker that keeps dying is restarted ever more slowly
STABLE_S = 10.0  # a worker that lived this long starts the backoff over


def worker_count(value: str) -> int:
    """`--workers`: a number, or `auto` for every core this process may run on."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = int(value)
    if count < 1:
        raise ValueError("--workers must be at least 1 (or auto)")
    return count


def this_worker() -> tuple[int, int] | None:
    """(index, count) when this process is a supervised worker, else None."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    index, count = value.split("/")
    return int(index), int(count)


async def exit_with_parent(stop: asyncio.Event) -> None:
    """A worker whose supervisor died (kill -9 leaves no one to forward a signal) stops instead of serving on,
    unsupervised, on a port nobody manages."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.warning("supervisor (pid %d) is gone: this worker stops", parent)
            stop.set()


def worker_share(config, index: int, count: int):
    """The configuration with each deployment's rpm, tpm and max_concurrency cut to worker `index`'s share: the
    integer part for everyone, one more for the first `remainder` workers, so the shares add up to the quota.
    On Redis the workers share rpm and tpm like any replicas (dispatch_shared.py): only max_concurrency is cut."""
    def share(limit: int | None) -> int | None:
        if limit is None:
            return None
        return max(1, limit // count + (1 if index < limit % count else 0))

    split = share if config.state.backend == "memory" else (lambda limit: limit)
    groups = {}
    for name, group in config.model_groups.items():
        cut = {d.name: dataclasses.replace(d, rpm=split(d.rpm), tpm=split(d.tpm),
                                           max_concurrency=share(d.max_concurrency)) for d in group.deployments}
        groups[name] = dataclasses.replace(
            group, deployments=tuple(cut[d.name] for d in group.deployments),
            tiers=tuple(tuple(cut[d.name] for d in tier) for tier in group.tiers))
    return dataclasses.replace(config, model_groups=groups)


class Supervisor:
    def __init__(self, argv: list[str], count: int, host: str, port: int, state_socket: str | None,
                 peers_dir: str):
        self.argv = argv  # the worker's command line (`serve` without --workers, with the port fixed)
        self.count = count
        self.host, self.port = host, port
        self.state_socket = state_socket
        self.peers_dir = peers_dir  # private to this supervisor: the workers' sockets (telemetry/peers.py)
        self.procs: list[asyncio.subprocess.Process | None] = [None] * count
        self.stopping = False
        self.restarts = 0
        self._started = [asyncio.Event() for _ in range(count)]  # each worker's first "listening" line

    async def run(self, stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        watchers = [asyncio.ensure_future(self._keep(index)) for index in range(self.count)]
        await self._ready()
        print(f"skyrelay gateway listening on http://{self.host}:{self.port}/v1 ({self.count} workers)", flush=True)
        await stop.wait()
        self.stopping = True
        self._forward(signal.SIGTERM)
        await asyncio.gather(*watchers, return_exceptions=True)
        return 0

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**os.environ, WORKER_ENV: f"{index}/{self.count}", WORKERS_ENV: str(self.count),
               PEERS_ENV: self.peers_dir}
        if self.state_socket:
            env[SOCKET_ENV] = self.state_socket
        return await asyncio.create_subprocess_exec(*self.argv, env=env, stdout=asyncio.subprocess.PIPE)

    async def _keep(self, index: int) -> None:
        """Run worker `index` until the supervisor stops, restarting it whenever it dies."""
        failures = 0
        while not self.stopping:
            started = time.monotonic()
            proc = self.procs[index] = await self._spawn(index)
            if (await proc.stdout.readline()).startswith(b"skyrelay gateway listening"):  # its port is open
                self._started[index].set()
            # else it died before listening (EOF): the supervisor is not ready until its replacement listens
            asyncio.ensure_future(self._drain_output(proc))
            code = await proc.wait()
            if self.stopping:
                return
            failures = 0 if time.monotonic() - started > STABLE_S else failures + 1
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning("worker %d (pid %d) exited with %s: restarting in %.1f s", index, proc.pid, code, delay)
            self.restarts += 1
            await asyncio.sleep(delay)

    async def _drain_output(self, proc) -> None:
        while await proc.stdout.readline():  # a worker's later output is the supervisor's to pass on
            pass

    async def _ready(self) -> None:
        await asyncio.gather(*(started.wait() for started in self._started))

    def _forward(self, sig: int) -> None:
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: it fixes port 0 to a real port every worker can share, and
    keeps the port ours between a dead worker and its replacement."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def supervise(path: str, host: str | None, port: int | None, count: int, stop: asyncio.Event,
                    extra: list[str]) -> int:
    from .config import ConfigError, load_config
    from .net.server import CannotListen

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    host = host if host is not None else config.server.host
    port = port if port is not None else config.server.port
    try:
        keeper = _reserve_port(host, port)
    except OSError as exc:
        raise CannotListen(host, port, exc) from None
    port = keeper.getsockname()[1]
    state_server = None
    state_socket = None
    with tempfile.TemporaryDirectory(prefix="skyrelay-") as tmp:
        if config.state.backend == "memory":
            state_socket = os.path.join(tmp, "state.sock")
            state_server = StateServer(state_socket)
            await state_server.start()
        argv = [sys.executable, "-m", "skyrelay.cli", "serve", "--config", path, "--host", host, "--port", str(port),
                *extra]
        try:
            return await Supervisor(argv, count, host, port, state_socket, tmp).run(stop)
        finally:
            if state_server is not None:
                await state_server.close()
            keeper.close()
