"""What the ledger's money side costs: record_costs per attempt (in-process), and the reports over a ledger of N
records (the first amortisation of a week of reserved hours, a second one with nothing left to do, a spend report,
the burn-down and a FOCUS export). Not a test.

Run: .venv/bin/python bench/ledger_reports.py [--records 100000] [--url postgresql://postgres@127.0.0.1/test]
Without --url it uses a SQLite file in a temporary directory. With --url it writes a table of its own
(bench_ledger_<pid>) and drops it at the end.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import random
import tempfile
import time
import timeit
from contextlib import closing

from skyrelay.canonical import Usage
from skyrelay.config.model import Commitment, Config, Deployment, ModelGroup, Price
from skyrelay.ledger import commitments as burn
from skyrelay.ledger import focus, reports
from skyrelay.ledger.money import record_costs
from skyrelay.ledger.schema import COLUMN_NAMES
from skyrelay.ledger.store import LedgerStore

DAY = 86400.0
START = datetime.date(2026, 1, 1)
END = datetime.date(2027, 1, 1)
DEPLOYMENTS = (
    Deployment("gpt-east", "chat", "azure", model="gpt-4o", price=Price(2.5, 10, 1.25)),
    Deployment("ptu-east", "chat", "azure", model="gpt-4o", price=Price(2.5, 10)),
    Deployment("claude", "chat", "bedrock", model="anthropic.claude-sonnet-4", price=Price(3, 15, 0.3, 3.75, 0.2)),
)
COMMITMENTS = (Commitment("ptu", "reserved", "azure", ("ptu-east",), START, END, cost_per_hour=180.0),
               Commitment("edp", "spend", "aws", ("claude",), START, END, amount_usd=1e6, discount=0.1))
CONFIG = Config(model_groups={"chat": ModelGroup("chat", deployments=DEPLOYMENTS)}, commitments=COMMITMENTS)


def bench_record_costs() -> None:
    usage = Usage(input_tokens=1234, output_tokens=321, cached_tokens=100)
    now = time.time()
    for label, deployment, commitments in (("on demand, no commitments", DEPLOYMENTS[0], ()),
                                           ("spend commitment", DEPLOYMENTS[2], COMMITMENTS),
                                           ("reserved commitment", DEPLOYMENTS[1], COMMITMENTS)):
        best = min(timeit.repeat(lambda: record_costs(deployment, usage, now, commitments), number=100_000,
                                 repeat=5))
        print(f"record_costs, {label:28s} {best / 100_000 * 1e6:6.2f} us")


def fill(store: LedgerStore, count: int, now: float) -> None:
    rng = random.Random(0)
    rows = []
    times = sorted(now - rng.random() * 7 * DAY for _ in range(count))  # the shipper writes in about time order
    for index, at in enumerate(times):
        deployment = DEPLOYMENTS[index % 3]
        usage = Usage(input_tokens=rng.randint(100, 4000), output_tokens=rng.randint(10, 800))
        listed, billed, effective, commitment = record_costs(deployment, usage, at, COMMITMENTS)
        record = {"request_id": f"r{index}", "attempt": 1, "started_at": at, "ended_at": at + 1,
                  "team": f"team-{index % 7}", "key_name": f"key-{index % 31}", "model_group": "chat",
                  "vendor": deployment.vendor, "deployment": deployment.name, "status": "ok",
                  "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "list_cost_usd": listed, "billed_cost_usd": billed, "effective_cost_usd": effective,
                  "commitment": commitment}
        rows.append(tuple(record.get(name, 0) for name in COLUMN_NAMES))
    marks = ", ".join("?" for _ in COLUMN_NAMES)
    sql = store.db.sql(f"INSERT INTO {store.table} ({', '.join(COLUMN_NAMES)}) VALUES ({marks})")
    with closing(store.conn.cursor()) as cur:
        cur.executemany(sql, rows)
    store.conn.commit()


def timed(label: str, work) -> None:
    began = time.perf_counter()
    detail = work()
    print(f"{label:44s} {time.perf_counter() - began:8.3f} s  {detail}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--url", help="a PostgreSQL URL (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()
    bench_record_costs()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{os.path.join(tmp, 'ledger.db')}"
        table = f"bench_ledger_{os.getpid()}"
        store = LedgerStore.from_url(url, table)
        now = time.time()
        try:
            timed(f"insert {args.records} records", lambda: fill(store, args.records, now))
            since = now - 7 * DAY
            def amortise() -> str:
                return f"{burn.amortise(store, COMMITMENTS, since, now)} changed"

            timed("amortise 7 days of reserved hours", amortise)
            timed("amortise again (nothing to change)", amortise)
            timed("spend --by team,vendor --since 7d",
                  lambda: f"{len(reports.spend(store, COMMITMENTS, ('team', 'vendor'), since, now))} rows")
            timed("spend --by key,deployment --since 7d",
                  lambda: f"{len(reports.spend(store, COMMITMENTS, ('key', 'deployment'), since, now))} rows")
            timed("commitments (burn-down)", lambda: f"{len(burn.burn_down(store, COMMITMENTS, now))} commitments")
            out = io.StringIO()
            timed("export focus --since 7d", lambda: f"{focus.export(store, CONFIG, since, now, out, now)} rows, "
                                                     f"{len(out.getvalue()) // 1024} KiB")
        finally:
            if args.url:
                store.execute(f"DROP TABLE {table}")
            store.close()


if __name__ == "__main__":
    main()
