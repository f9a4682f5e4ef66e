"""Micro-benchmark of the ledger: what the request path pays (the attempt's line before the call, the request's
lines when it closes, into a real spool; a refused request's one line), beside the telemetry hook in the same run; and what the shipper pays per
record to commit a spool to SQLite (and to PostgreSQL when one answers at 127.0.0.1:5432, database `test`).
Not a test. Run: .venv/bin/python bench/ledger_hook.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.db import parse_url
from skyrelay.dispatch import Dispatcher
from skyrelay.ledger.record import Recorder, header, money_of
from skyrelay.ledger.shipper import Shipper
from skyrelay.ledger.sinks import Sink
from skyrelay.ledger.spool import Spool, warm
from skyrelay.telemetry import Telemetry

N = 20_000
SHIPPED_REQUESTS = 30_000


def config():
    deployments = [{"name": n, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9",
                    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10}} for n in ("a", "b")]
    return parse_config({"model_groups": {"chat": {"deployments": deployments}}}, env={})


def request(cfg, recorder: Recorder | None, failover: bool, rid: str = "req_bench00001") -> None:
    """One request's ledger work, as the dispatcher does it (recorder None: the same without the ledger)."""
    ctx = RequestContext(rid, 1.0, body_bytes=400, path="/v1/chat/completions")
    ctx.group = "chat"
    a, b = cfg.deployments()
    if failover:
        first = Attempt(a, 1.0, 100)
        ctx.attempts.append(first)
        if recorder is not None:
            recorder.attempt_opened(ctx, first, 0)
        first.finish(1.01, "failed", RuntimeError())
    served = Attempt(b, 1.01, 100)
    ctx.attempts.append(served)
    if recorder is not None:
        recorder.attempt_opened(ctx, served, 0)
    served.finish(1.2, "ok")
    served.usage = ctx.usage = Usage(120, 40, 0)
    if recorder is not None:
        recorder.request_closed(ctx, 200)


def per_request(fn) -> float:
    """CPU microseconds per call, this thread's only (a busy machine preempts; it does not bill us for that)."""
    best = float("inf")
    for _ in range(5):
        began = time.thread_time()
        for _ in range(N):
            fn()
        best = min(best, time.thread_time() - began)
    return best / N * 1e6


def hot_path(cfg, workdir: str) -> None:
    spool = Spool(os.path.join(workdir, "hot"), 256 << 20, header)
    warm(spool.segments[0], 0, 256 << 20)  # what the syncer thread does ahead of the writer, here all at once
    deployments = {d.name: d for d in cfg.deployments()}
    recorder = Recorder(spool.append, deployments, (), time.monotonic)
    telemetry = Telemetry(cfg, Dispatcher.from_config(cfg))
    for case, failover in (("answered", False), ("failed over", True)):
        without = per_request(lambda: request(cfg, None, failover))
        with_ledger = per_request(lambda: request(cfg, recorder, failover))
        ctx = RequestContext("req_bench", 1.0)
        ctx.group = "chat"
        served = Attempt(cfg.deployments()[1], 1.01, 100)
        served.finish(1.2, "ok")
        served.usage = ctx.usage = Usage(120, 40, 0)
        ctx.attempts.append(served)
        hook = per_request(lambda: telemetry.on_close(ctx))
        print(f"request path, {case:12}: ledger {with_ledger - without:.3f} us/request "
              f"(telemetry hook, metrics on, in the same run: {hook:.3f} us)")
    refused = per_request(lambda: recorder.refused("req_bench00002", None, "AuthenticationFailed", 401))
    print(f"request path, {'refused':12}: ledger {refused:.3f} us/request (a bad key, an unknown model...)")
    telemetry.close()
    spool.close(shipped=True)


def shipping(cfg, workdir: str, url: str, label: str) -> None:
    spool = Spool(os.path.join(workdir, f"ship-{label}"), 64 << 20, header)
    deployments = {d.name: d for d in cfg.deployments()}
    recorder = Recorder(spool.append, deployments, (), time.monotonic)
    for n in range(SHIPPED_REQUESTS):
        request(cfg, recorder, False, f"req_bench{n:08x}")  # the attempt's line, then both records in one
    shipper = Shipper(spool, Sink(parse_url(url)),
                      lambda name, usage, when, est: money_of(deployments.get(name), usage, when, (), est))
    began, wall = time.thread_time(), time.perf_counter()
    while not shipper._ship_own():
        pass
    cpu, elapsed = time.thread_time() - began, time.perf_counter() - wall
    records = shipper.shipped
    print(f"shipper, {label:10}: {records} records in {elapsed:.2f} s ({records / elapsed:,.0f} records/s), "
          f"{cpu / records * 1e6:.1f} us CPU per record in this process")
    shipper.sink.close()
    spool.close(shipped=True)


def main() -> int:
    cfg = config()
    with tempfile.TemporaryDirectory() as workdir:
        hot_path(cfg, workdir)
        shipping(cfg, workdir, f"sqlite:///{workdir}/ledger.db", "sqlite")
        try:
            import psycopg

            schema = f"ledger_bench_{os.getpid()}"
            base = "postgresql://postgres@127.0.0.1:5432/test"
            with psycopg.connect(base, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            try:
                shipping(cfg, workdir, f"{base}?options=-csearch_path%3D{schema}", "postgresql")
            finally:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
        except Exception as exc:  # noqa: BLE001
            print(f"shipper, postgresql: skipped ({type(exc).__name__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
