"""Micro-benchmark of what a request with a declared key pays: authentication (key -> Principal), then its
models, rate limits and budget reserved and settled. Not a test.

Run: PYTHONPATH=src .venv/bin/python bench/governance.py [--redis redis://127.0.0.1:6379/0 | --local]
Instructions per request (deterministic, for a loaded machine), master key then declared key:
  .venv/bin/python bench/instructions.py -- .venv/bin/python bench/governance.py --count {n} --key master
  .venv/bin/python bench/instructions.py -- .venv/bin/python bench/governance.py --count {n} --key declared
The configuration is realistic: 300 keys in 10 teams; the calling key has rpm, tpm, max_parallel and a daily
budget, its team an rpm and a monthly budget (6 counters). The figure is microseconds of CPU per request on the
memory backend, beside the same path with the master key (no limits); with --redis, wall time per request
(one round trip each way: the reserve on the request path, the settle in a task after it); with --local, the
counters in a state process of their own as `serve --workers N` keeps them in its supervisor (state/local.py):
CPU per request of this process and of the state process, and wall time, one request at a time or, with
--concurrency C, C in flight at once. The rate-limit headers the answer carries are computed and written into
the answer's head too (the head itself is written on both paths).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.governance.headers import rate_limit_headers
from skyrelay.net.messages import response_head
from skyrelay.server import Gateway

KEYS = 300
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.60}


CALLING_KEY = f"sk-bench-0150-{'x' * 24}"
# What every chat answer's head carries (server/app.py's outcome_headers and the request id), governed or not.
ANSWER_HEADERS = [("content-type", "application/json"), ("x-skyrelay-deployment", "d0"),
                  ("x-skyrelay-attempts", "1"), ("x-skyrelay-model-group", "chat"), ("x-request-id", "req_1")]
NO_HEADERS: list = []


def governed_sections() -> dict:
    """300 keys in 10 teams; every key has rpm, tpm, max_parallel and a daily budget, its team an rpm and a
    monthly budget (6 counters per request). bench/gateway_overhead.py --governed serves this too."""
    teams = {f"team{t}": {"rpm": 1_000_000, "budget": {"usd": 1e9, "period": "month"}} for t in range(10)}
    keys = [{"name": f"key{i}", "key": f"sk-bench-{i:04d}-{'x' * 24}", "team": f"team{i % 10}", "rpm": 10_000_000,
             "tpm": 10**12, "max_parallel": 1000, "budget": {"usd": 1e9, "period": "day"}} for i in range(KEYS)]
    return {"teams": teams, "keys": keys}


def config(state: dict) -> dict:
    deployments = [{"name": f"d{i}", "kind": "openai", "base_url": f"http://127.0.0.1:{9000 + i}/v1", "model": "m",
                    "price": PRICE} for i in range(3)]
    return {"server": {"master_key": "sk-master"}, "model_groups": {"chat": {"deployments": deployments}},
            "state": state, **governed_sections()}


async def per_request(gateway: Gateway, key: str, n: int, timed_wall: bool = False) -> float:
    """Seconds per request of authenticate + context + admit + the answer's head + settle (CPU time: nothing here
    waits, on memory)."""
    headers = {"authorization": f"Bearer {key}"}
    governor = gateway.governor
    group = gateway.config.model_groups["chat"]
    deployment = group.deployments[0]
    usage = Usage(input_tokens=50, output_tokens=20)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        principal = gateway.authenticate(headers)
        ctx = RequestContext("req", body_bytes=200, principal=principal)
        ctx.max_output = 64
        if principal is not None:
            pending = governor.admit(ctx, group)
            if pending is not None:
                await pending
            if governor.defers:  # Redis: the first attempt reserves (here: the key's counters alone)
                await governor.reserve_deferred(ctx)
        # The answer's head, with the x-ratelimit-* headers a governed answer carries: computed and written.
        extra = rate_limit_headers(ctx) if ctx.admission is not None else NO_HEADERS  # (an OpenAI route)
        response_head(200, ANSWER_HEADERS + extra, "content-length: 1000", True)
        ctx.attempts.append(Attempt(deployment, 0.0, 0))
        ctx.attempts[-1].status = "ok"
        ctx.usage = usage
        ctx.close()
    if getattr(governor.state, "_tasks", None):
        await asyncio.gather(*governor.state._tasks)
    if governor.state.backend == "memory" and not timed_wall:  # nothing waits: CPU time is the figure
        return (time.process_time() - cpu) / n
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


STATE_PROCESS = """
import asyncio, sys, uvloop
from skyrelay.state.local import StateServer
async def main():
    await StateServer(sys.argv[1]).start()
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""  # under uvloop, as the supervisor runs it


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def concurrently(gateway: Gateway, n: int, concurrency: int) -> tuple[float, float]:
    """`per_request` in `concurrency` loops at once (requests in flight together, as under load): wall, CPU."""
    if concurrency == 1:
        return await per_request(gateway, CALLING_KEY, n, timed_wall=True)
    start, cpu = time.perf_counter(), time.process_time()
    each = n // concurrency
    await asyncio.gather(*(per_request(gateway, CALLING_KEY, each, timed_wall=True) for _ in range(concurrency)))
    done = each * concurrency
    return (time.perf_counter() - start) / done, (time.process_time() - cpu) / done


async def local(n: int, concurrency: int) -> None:
    """The supervisor's counters, in a process of their own, as a worker of `serve --workers 2` uses them."""
    from skyrelay.state.local import SOCKET_ENV

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.sock")
        server = subprocess.Popen([sys.executable, "-c", STATE_PROCESS, path], stdout=subprocess.PIPE)
        try:
            server.stdout.readline()
            os.environ[SOCKET_ENV] = path
            gateway = Gateway(parse_config(config({"backend": "memory"}), env={}))
            await gateway.governor.state.connect()
            gateway.governor.state.start()  # its reader of answers (Gateway.start does both when serving)
            await concurrently(gateway, n, concurrency)  # warm up
            best = None
            for _ in range(3):
                before = process_cpu_s(server.pid)
                wall, cpu = await concurrently(gateway, n, concurrency)
                await asyncio.sleep(0.2)  # the settles written without an answer are served
                theirs = (process_cpu_s(server.pid) - before) / n
                if best is None or cpu + theirs < best[1] + best[2]:
                    best = (wall, cpu, theirs)
            wall, cpu, theirs = best
            print(f"local state process: declared key with 6 counters {cpu * 1e6:.1f} us/request CPU in the worker, "
                  f"{theirs * 1e6:.1f} us in the state process, {wall * 1e6:.0f} us wall ({concurrency} request(s) "
                  f"at a time; best of 3 rounds of {n}; the state process's CPU is counted in clock ticks)")
            await gateway.governor.aclose()
            await gateway.dispatcher.aclose()
        finally:
            server.terminate()
            server.wait(5)


async def counted(count: int, which: str) -> None:
    """Exactly `count` requests with one key, after a warm-up: for bench/instructions.py."""
    gateway = Gateway(parse_config(config({"backend": "memory"}), env={}))
    key = "sk-master" if which == "master" else CALLING_KEY
    await per_request(gateway, key, 500)
    if count:
        await per_request(gateway, key, count)


async def main(redis_url: str | None) -> None:
    state = {"backend": "memory"} if redis_url is None else {"backend": "redis", "url": redis_url,
                                                             "prefix": "skyrelay-bench:"}
    gateway = Gateway(parse_config(config(state), env={}))
    n = 20_000 if redis_url is None else 2_000
    key = CALLING_KEY
    if redis_url is None:
        floor = governed = float("inf")
        for _ in range(5):  # the best of five rounds (the first warms up): these machines are shared and noisy
            floor = min(floor, await per_request(gateway, "sk-master", n))
            governed = min(governed, await per_request(gateway, key, n))
        print(f"memory: master key {floor * 1e6:.2f} us/request, declared key with 6 counters "
              f"{governed * 1e6:.2f} us/request (CPU); governance adds {(governed - floor) * 1e6:.2f} us")
    else:
        await per_request(gateway, key, n)  # warm up the connections
        wall, cpu = await per_request(gateway, key, n)
        print(f"redis: declared key with 6 counters {wall * 1e6:.0f} us/request wall (two round trips, one on the "
              f"request path), {cpu * 1e6:.2f} us/request CPU in the gateway")
    await gateway.governor.aclose()
    await gateway.dispatcher.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="a Redis URL: time the Redis backend instead of memory")
    parser.add_argument("--local", action="store_true",
                        help="time the counters in a state process of their own, as `serve --workers N` keeps them")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="with --local: this many requests in flight at once (their round trips share writes)")
    parser.add_argument("--count", type=int, help="run exactly this many requests once (bench/instructions.py)")
    parser.add_argument("--key", choices=("master", "declared"), default="declared")
    args = parser.parse_args()
    if args.local:
        import uvloop

        uvloop.run(local(5_000, args.concurrency))  # both ends under uvloop, as `serve --workers N` runs them
    else:
        asyncio.run(main(args.redis) if args.count is None else counted(args.count, args.key))
