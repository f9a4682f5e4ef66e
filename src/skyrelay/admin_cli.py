"""`skyrelay keys create|list|show|update|revoke` and `skyrelay teams create|list|show|update|delete`: a client of a
running gateway's admin API (`--url`, the master key from SKYRELAY_MASTER_KEY), printing tables or `--json`.

Exit codes: 0 done, 2 bad input (refused by argparse or answered 400/404/409 by the gateway), 1 anything else
(the gateway unreachable, the key refused, the store down).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:4000"
LIMIT_FIELDS = ("models", "residency", "rpm", "tpm", "max_parallel", "budget", "metadata")
KEY_FIELDS = ("team", *LIMIT_FIELDS, "expires_at", "role")
INPUT_STATUSES = (400, 404, 409, 415)


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def add_commands(commands: Any) -> None:
    """`keys` and `teams`, under the main parser's subcommands."""
    for kind in ("keys", "teams"):
        parser = commands.add_parser(kind, help=f"manage {kind} through a running gateway's admin API")
        actions = parser.add_subparsers(dest="action", required=True)
        for action in ("create", "list", "show", "update", "revoke" if kind == "keys" else "delete"):
            sub = actions.add_parser(action)
            sub.add_argument("--url", default=os.environ.get("SKYRELAY_URL", DEFAULT_URL),
                             help=f"the gateway (default: $SKYRELAY_URL or {DEFAULT_URL})")
            sub.add_argument("--json", action="store_true", help="print the answer as JSON")
            if action != "list":
                sub.add_argument("target", metavar="NAME" if action == "create" else "ID_OR_NAME")
            if action in ("create", "update"):
                _field_options(sub, kind)


def _field_options(sub: argparse.ArgumentParser, kind: str) -> None:
    sub.add_argument("--models", help="model groups it may use, comma-separated")
    sub.add_argument("--residency", help="geos or regions its data may go to, comma-separated (e.g. eu)")
    sub.add_argument("--rpm", type=int, help="requests per minute")
    sub.add_argument("--tpm", type=int, help="tokens per minute")
    sub.add_argument("--max-parallel", type=int, help="requests in flight at once")
    sub.add_argument("--budget", metavar="USD/PERIOD", help="e.g. 10/day (periods: day, week, month, total)")
    sub.add_argument("--metadata", metavar="KEY=VALUE", action="append", help="repeatable")
    if kind == "keys":
        sub.add_argument("--team")
        sub.add_argument("--expires-at", help='ISO 8601, e.g. "2027-01-31T00:00:00Z"')
        sub.add_argument("--role", choices=("user", "admin"))
    sub.add_argument("--clear", metavar="FIELD", action="append", default=[],
                     help="remove a limit (update only; repeatable), e.g. --clear rpm")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CliError as exc:
        print(f"skyrelay {args.command}: {exc}", file=sys.stderr)
        return exc.code


def _run(args: argparse.Namespace) -> int:
    kind, action = args.command, args.action
    base = f"{args.url.rstrip('/')}/admin/{kind}"
    if action == "list":
        answer = _call("GET", base)["data"]
    elif action == "create":
        body = _fields(args, kind)
        body["name"] = args.target
        answer = _call("POST", base, body)
    else:
        url = f"{base}/{quote(args.target, safe='')}"
        if action == "show":
            answer = _call("GET", url)
        elif action == "update":
            body = _fields(args, kind)
            if not body:
                raise CliError("nothing to change: give at least one field option (or --clear FIELD)", 2)
            answer = _call("PATCH", url, body)
        else:
            answer = _call("DELETE", url)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(_table(answer if isinstance(answer, list) else [answer], kind))
    if action == "create" and kind == "keys":
        print(f"\nkey: {answer['key']}\n(shown this once: store it now; the gateway keeps only a keyed hash)")
    return 0


def _fields(args: argparse.Namespace, kind: str) -> dict:
    body: dict[str, Any] = {}
    for name in ("models", "residency"):
        if getattr(args, name) is not None:
            body[name] = [part.strip() for part in getattr(args, name).split(",") if part.strip()]
    for name in ("rpm", "tpm", "max_parallel", "team", "expires_at", "role"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if args.budget is not None:
        body["budget"] = _budget(args.budget)
    if args.metadata:
        body["metadata"] = dict(_pair(entry) for entry in args.metadata)
    allowed = KEY_FIELDS if kind == "keys" else LIMIT_FIELDS
    for name in args.clear:
        if args.action != "update":
            raise CliError("--clear is for update", 2)
        if name.replace("-", "_") not in allowed:
            raise CliError(f"--clear {name}: not a field (fields: {', '.join(allowed)})", 2)
        body[name.replace("-", "_")] = None
    return body


def _budget(text: str) -> dict:
    usd, sep, period = text.partition("/")
    try:
        amount = float(usd.lstrip("$"))
    except ValueError:
        amount = None
    if not sep or amount is None:
        raise CliError(f"--budget {text!r}: expected USD/PERIOD, e.g. 10/day", 2)
    return {"usd": amount, "period": period}


def _pair(entry: str) -> tuple[str, str]:
    key, sep, value = entry.partition("=")
    if not sep or not key:
        raise CliError(f"--metadata {entry!r}: expected KEY=VALUE", 2)
    return key, value


def _call(method: str, url: str, body: dict | None = None) -> Any:
    key = os.environ.get("SKYRELAY_MASTER_KEY")
    if not key:
        raise CliError("set SKYRELAY_MASTER_KEY to the gateway's master key (or a key with role: admin)", 2)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {key}", "content-type": "application/json", "accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise CliError(f"{exc.code}: {message}", 2 if exc.code in INPUT_STATUSES else 1) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach the gateway at {url.split('/admin/')[0]} ({reason})", 1) from None


def _table(rows: list[dict], kind: str) -> str:
    if kind == "keys":
        columns = ("id", "name", "team", "role", "status", "rpm", "tpm", "max_parallel", "budget", "models",
                   "expires_at", "source")
    else:
        columns = ("id", "name", "rpm", "tpm", "max_parallel", "budget", "models", "residency", "source")
    cells = [[_cell(row, column) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines)


def _cell(row: dict, column: str) -> str:
    if column == "status":
        return "revoked" if row.get("revoked_at") else ("deleted" if row.get("deleted") else "active")
    value = row.get(column)
    if value is None:
        return "-"
    if column == "budget":
        return f"${value['usd']:g}/{value['period']}"
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return str(value)
