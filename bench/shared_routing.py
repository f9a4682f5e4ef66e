"""Micro-benchmark of the whole attempt loop for a request with a declared key, on the memory and the Redis
backends: authenticate, admit, plan, reserve (the key's 6 counters and the deployment's rpm and tpm), call a
provider that answers at once, settle. Not a test.

Run: PYTHONPATH=src:bench .venv/bin/python bench/shared_routing.py [--redis redis://127.0.0.1:6379/0]
Deterministic under load: `valgrind --tool=callgrind` of `-n 1000 --rounds 1` and `-n 2000 --rounds 1`; the
difference of the two instruction counts over 1,000 is one request's.
The figure is microseconds of CPU per request in the gateway process (the provider costs nothing), and with
--redis the wall time too (the round trip to Redis on the request path; the settle and the snapshot run as tasks,
counted in the CPU figure).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from skyrelay.canonical import ChatRequest, ChatResponse, Usage
from skyrelay.config import parse_config
from skyrelay.context import RequestContext
from skyrelay.server import Gateway

from governance import CALLING_KEY, governed_sections  # noqa: E402 - bench/ is the script's own directory

USAGE = Usage(input_tokens=50, output_tokens=20)


class Instant:
    """A provider that answers every chat at once."""

    def __init__(self):
        self.observe_limits = None
        self.speaks_responses = self.speaks_anthropic = False

    async def chat(self, req):
        return ChatResponse(id="r", model="m", created=0, choices=[], usage=USAGE)

    def dropped_extras(self, extra):
        return ()

    async def aclose(self):
        pass


def config(state: dict) -> dict:
    deployments = [{"name": f"d{i}", "kind": "openai", "base_url": f"http://127.0.0.1:{9000 + i}/v1", "model": "m",
                    "rpm": 10**9, "tpm": 10**12, "tier": 0 if i < 2 else 1,
                    "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}} for i in range(3)]
    return {"server": {"master_key": "sk-master"}, "model_groups": {"chat": {"deployments": deployments}},
            "state": state, "ledger": {"enabled": False}, "metrics": {"enabled": False}, **governed_sections()}


async def per_request(gateway: Gateway, n: int) -> tuple[float, float]:
    dispatcher = gateway.dispatcher
    headers = {"authorization": f"Bearer {CALLING_KEY}"}
    req = ChatRequest(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=64)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        ctx = RequestContext("req", body_bytes=200, principal=gateway.authenticate(headers))
        await dispatcher.chat(req, ctx)
    state = gateway.governor.state
    if getattr(state, "_tasks", None):
        await asyncio.gather(*state._tasks)
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


async def main(redis_url: str | None, n: int | None, rounds: int | None) -> None:
    state = {"backend": "memory"} if redis_url is None else {"backend": "redis", "url": redis_url,
                                                             "prefix": "skyrelay-bench:"}
    gateway = Gateway(parse_config(config(state), env={}))
    for name in list(gateway.dispatcher.providers):
        gateway.dispatcher.providers[name] = Instant()
    n = n or (20_000 if redis_url is None else 2_000)
    best_wall = best_cpu = float("inf")
    for _ in range(rounds or (5 if redis_url is None else 3)):  # the best of a few rounds (the first warms up)
        wall, cpu = await per_request(gateway, n)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    label = "memory" if redis_url is None else "redis"
    print(f"{label}: declared key (6 counters), 3 deployments with rpm/tpm: {best_cpu * 1e6:.2f} us/request CPU, "
          f"{best_wall * 1e6:.0f} us/request wall")
    await gateway.governor.aclose()
    await gateway.dispatcher.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="a Redis URL: time the Redis backend instead of memory")
    parser.add_argument("-n", type=int, help="requests per round (for instruction counts: two runs, N and 2N)")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.n, args.rounds))
