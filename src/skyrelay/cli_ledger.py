"""`skyrelay spend | commitments | export focus`: the ledger's reports, read straight from the database the
configuration file names (`database.url`), so they work whether or not a gateway is running."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson


def add_commands(commands: Any) -> None:
    """Register the ledger's commands on the CLI's subparsers; each sets `handler`."""
    spend = commands.add_parser("spend", help="spend by team, vendor, model group, deployment or key")
    _config_option(spend)
    spend.add_argument("--by", default="team",
                       help="comma-separated: team, vendor, model_group, deployment, key, region (default: team)")
    spend.add_argument("--since", default="7d", help="7d, 24h, 30m, a date or a UTC time (default: 7d)")
    spend.add_argument("--until", default="now", help="the end, excluded (default: now)")
    spend.add_argument("--json", action="store_true", help="JSON instead of a table")
    spend.set_defaults(handler=spend_command)

    burn = commands.add_parser("commitments", help="every commitment's burn-down")
    _config_option(burn)
    burn.add_argument("--json", action="store_true", help="JSON instead of text")
    burn.set_defaults(handler=commitments_command)

    export = commands.add_parser("export", help="export the ledger in a standard format")
    formats = export.add_subparsers(dest="format", required=True)
    focus = formats.add_parser("focus", help="FinOps FOCUS 1.2 CSV, one row per hour and charge")
    _config_option(focus)
    focus.add_argument("--since", required=True, help="7d, a date (2026-11-01) or a UTC time; rounds down to the hour")
    focus.add_argument("--until", default="now", help="the end, excluded; rounds up to the hour (default: now)")
    focus.add_argument("-o", "--output", required=True, help="the CSV file to write ('-' for standard output)")
    focus.set_defaults(handler=focus_command)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="the gateway's YAML configuration file")


def spend_command(args: argparse.Namespace) -> int:
    from .ledger import reports

    def report(config: Any, store: Any) -> str:
        now = time.time()
        by = reports.parse_dimensions(args.by)
        since, until = reports.parse_time(args.since, now), reports.parse_time(args.until, now)
        rows = reports.spend(store, config.commitments, by, since, until)
        total = reports.totals(store, since, until)
        if args.json:
            body = reports.as_json(rows, total, by, since, until)
            return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        head = f"spend from {reports.iso(since)} to {reports.iso(until)} (USD; billed is what the vendors invoice)"
        return head + "\n" + reports.render(rows, by, total)

    return _run(args.config, report)


def commitments_command(args: argparse.Namespace) -> int:
    from .ledger import commitments

    def report(config: Any, store: Any) -> str:
        found = commitments.burn_down(store, config.commitments, time.time())
        if args.json:
            return orjson.dumps({"commitments": [b.as_dict() for b in found]}, option=orjson.OPT_INDENT_2).decode()
        return commitments.render(found)

    return _run(args.config, report)


def focus_command(args: argparse.Namespace) -> int:
    from .ledger import focus, reports

    def report(config: Any, store: Any) -> str:
        now = time.time()
        since, until = reports.parse_time(args.since, now), reports.parse_time(args.until, now)
        if until <= since:
            raise reports.ReportError("--until must be after --since")
        if args.output == "-":
            count = focus.export(store, config, since, until, sys.stdout, now)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = focus.export(store, config, since, until, out, now)
        return "" if args.output == "-" else f"wrote {count} rows to {args.output}"

    return _run(args.config, report)


def _run(path: str, report: Any) -> int:
    """Load the configuration, open its database, print what `report` returns; a mistake is one line on stderr."""
    from .config import ConfigError, load_config
    from .ledger.reports import ReportError
    from .ledger.store import LedgerStore

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        with LedgerStore.from_url(config.database.url, create=False) as store:
            text = report(config, store)
    except ReportError as exc:
        print(f"skyrelay: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return 0
    except OSError as exc:
        print(f"skyrelay: cannot write: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database: sqlite3 / psycopg errors, which never carry the URL's password
        if not type(exc).__module__.startswith(("sqlite3", "psycopg")):
            raise
        print(f"skyrelay: the ledger's database is unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if text:
        print(text)
    return 0
