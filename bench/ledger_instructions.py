"""The ledger's request path in CPU instructions per request, counted by valgrind (callgrind): deterministic, so
it compares two versions on a loaded machine where microsecond timings do not. Each case runs the same requests
twice under valgrind, with the ledger and without, and divides the difference by the number of requests (startup
cancels out). `--shipper`: the shipper's instructions per record instead, committing to SQLite in passes of
PASS_REQUESTS requests (what one 0.2 s pass ships at ~1,500 requests/s): the same spool written twice, shipped and
not. Slow (about a minute per run). Not a test. Run: .venv/bin/python bench/ledger_instructions.py [--shipper]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

REQUESTS = 3000
WARM_UP = 200
PASS_REQUESTS = 300


def child(mode: str, count: int, failover: bool) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ledger_hook import config, request

    from skyrelay.ledger.record import Recorder, header
    from skyrelay.ledger.spool import Spool, warm

    cfg = config()
    with tempfile.TemporaryDirectory() as workdir:
        spool = Spool(os.path.join(workdir, "spool"), 64 << 20, header)
        warm(spool.segments[0], 0, 64 << 20)
        recorder = Recorder(spool.append, {d.name: d for d in cfg.deployments()}, (), time.monotonic)
        used = recorder if mode == "ledger" else None
        for _ in range(WARM_UP + count):
            request(cfg, used, failover)
        spool.close(shipped=True)


def shipper_child(mode: str, count: int) -> None:
    """Writes `count` answered requests to a spool; mode "ship" commits each pass to SQLite as the shipper thread
    does, "none" only writes them (both ship a warm-up pass first: the connection and the table's creation)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ledger_hook import config, request

    from skyrelay.db import parse_url
    from skyrelay.ledger.record import Recorder, header, money_of
    from skyrelay.ledger.shipper import Shipper
    from skyrelay.ledger.sinks import Sink
    from skyrelay.ledger.spool import Spool, warm

    cfg = config()
    deployments = {d.name: d for d in cfg.deployments()}
    with tempfile.TemporaryDirectory() as workdir:
        spool = Spool(os.path.join(workdir, "spool"), 64 << 20, header)
        warm(spool.segments[0], 0, 64 << 20)
        recorder = Recorder(spool.append, deployments, (), time.monotonic)
        shipper = Shipper(spool, Sink(parse_url(f"sqlite:///{workdir}/ledger.db")),
                          lambda name, usage, when, est: money_of(deployments.get(name), usage, when, (), est))
        made = 0
        for size, ship in ((WARM_UP, True), *((PASS_REQUESTS, mode == "ship") for _ in range(count // PASS_REQUESTS))):
            for _ in range(size):
                made += 1
                request(cfg, recorder, False, f"req_0123456789{made:x}")
            if ship:
                shipper._ship_own()
        shipper.sink.close()
        spool.close(shipped=True)


def instructions(mode: str, failover: bool) -> int:
    return counted("--child", mode, REQUESTS, int(failover))


def counted(*args: object) -> int:
    """Instructions of this script run under valgrind with `args`."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         *map(str, args)], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return 0
    if sys.argv[1:2] == ["--shipper-child"]:
        shipper_child(sys.argv[2], int(sys.argv[3]))
        return 0
    if sys.argv[1:2] == ["--shipper"]:
        added = (counted("--shipper-child", "ship", REQUESTS) - counted("--shipper-child", "none", REQUESTS))
        print(f"shipper, sqlite: {added / (2 * REQUESTS):,.0f} instructions/record (passes of {PASS_REQUESTS} "
              "requests, 2 records each)")
        return 0
    for case, failover in (("answered", False), ("failed over", True)):
        added = (instructions("ledger", failover) - instructions("none", failover)) / REQUESTS
        print(f"request path, {case:12}: ledger {added:,.0f} instructions/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
