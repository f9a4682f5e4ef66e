"""The ledger's request path in CPU instructions per request, counted by valgrind (callgrind): deterministic, so
it compares two versions on a loaded machine where microsecond timings do not. Each case runs the same requests
twice under valgrind, with the ledger and without, and divides the difference by the number of requests (startup
cancels out). Slow (about a minute per run). Not a test. Run: .venv/bin/python bench/ledger_instructions.py
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


def instructions(mode: str, failover: bool) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child", mode,
         str(REQUESTS), str(int(failover))], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return 0
    for case, failover in (("answered", False), ("failed over", True)):
        added = (instructions("ledger", failover) - instructions("none", failover)) / REQUESTS
        print(f"request path, {case:12}: ledger {added:,.0f} instructions/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
