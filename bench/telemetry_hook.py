"""Micro-benchmark of the telemetry hook: microseconds each request pays when its context closes. Not a test.

Run: .venv/bin/python bench/telemetry_hook.py
The budget (docs/observability.md) is 3 us per request for metrics and the access log together. Measured against
a context with one answered attempt (the common case) and one that failed over (the rarer, dearer one), priced by
the ledger as its recorder does before telemetry hears of a request (the ledger is on by default); the access log
writes to /dev/null through its real buffer, and its timing includes encoding and writing the lines (its batched
flush, amortised per request).

Timings are noisy on a shared machine; instruction counts are not. `--calls N --case CASE` runs one case N times
and prints nothing, for callgrind: the instructions per request are (total at N - total at 0) / N.
  for n in 0 10240; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      .venv/bin/python bench/telemetry_hook.py --case both --calls $n 2>&1 | grep Collected; done
CASE: events | metrics | both (metrics and the access log), `-fo` for the failed-over context, `-path` for the
request path alone (the access log's waiting lines dropped instead of encoded and written).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import timeit

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.dispatch import Dispatcher
from skyrelay.ledger.record import money_of
from skyrelay.telemetry import Telemetry

N = 200_192  # a whole number of batches
BATCH_LINES = 512  # telemetry.access_log.BATCH_LINES


def config(metrics: bool, access: bool):
    deployments = [{"name": n, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9",
                    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10}} for n in ("a", "b")]
    return parse_config({"model_groups": {"chat": {"deployments": deployments}},
                         "metrics": {"enabled": metrics}, "logging": {"access": access, "file": "/dev/null"}},
                        env={})


def closed_context(cfg, failover: bool) -> RequestContext:
    ctx = RequestContext("req_bench", 1.0, body_bytes=400, path="/v1/chat/completions")
    ctx.group = "chat"
    a, b = cfg.deployments()
    if failover:
        first = Attempt(a, 1.0, 100)
        first.finish(1.01, "failed", RuntimeError())
        ctx.attempts.append(first)
    served = Attempt(b, 1.01, 100)
    served.finish(1.2, "ok")
    served.usage = ctx.usage = Usage(120, 40, 0)
    ctx.attempts.append(served)
    served.ledger = money_of(b, served.usage, 1.8e9, (), 0)  # what the ledger's recorder leaves on the attempt
    ctx.cost_usd = served.ledger[6]
    return ctx


def per_call(telemetry: Telemetry, ctx: RequestContext) -> float:
    hook = telemetry.on_close
    flush = telemetry.access_log.flush if telemetry.access_log is not None else (lambda: None)

    def run() -> None:  # in the access log's batches, each flushed as the gateway's loop would
        for _ in range(N // BATCH_LINES):
            for _ in range(BATCH_LINES):
                hook(ctx)
            flush()

    return min(timeit.repeat(run, number=1, repeat=5)) / N * 1e6


def calls(case: str, count: int) -> None:
    """`count` closes of one case's context, in the access log's batches (for instruction counts)."""
    metrics, access = {"events": (False, False), "metrics": (True, False), "both": (True, True)}[case.split("-")[0]]
    cfg = config(metrics, access)
    telemetry = Telemetry(cfg, Dispatcher.from_config(cfg))
    ctx = closed_context(cfg, "-fo" in case)
    hook, log = telemetry.on_close, telemetry.access_log
    flush = log.flush if log is not None else (lambda: None)
    if case.endswith("-path"):
        def flush() -> None:
            log._rows = []
    for _ in range(count // BATCH_LINES):
        for _ in range(BATCH_LINES):
            hook(ctx)
        flush()
    telemetry.close()


async def main() -> None:
    logging.getLogger("skyrelay.events").setLevel(logging.WARNING)  # the failover line is not what is measured
    parser = argparse.ArgumentParser()
    parser.add_argument("--case")
    parser.add_argument("--calls", type=int)
    args = parser.parse_args()
    if args.case is not None:
        return calls(args.case, args.calls or 0)
    rows = []
    for label, metrics, access in (("events only (metrics, access log off)", False, False),
                                   ("metrics on", True, False), ("metrics + access log on", True, True)):
        cfg = config(metrics, access)
        telemetry = Telemetry(cfg, Dispatcher.from_config(cfg))
        for case, failover in (("answered", False), ("failed over", True)):
            rows.append((label, case, per_call(telemetry, closed_context(cfg, failover))))
        telemetry.close()
    baseline = min(timeit.repeat(lambda: None, number=N, repeat=5)) / N * 1e6
    print(f"{'hook':42} {'request':12} us/request  (an empty call: {baseline:.3f} us)")
    for label, case, us in rows:
        print(f"{label:42} {case:12} {us:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
