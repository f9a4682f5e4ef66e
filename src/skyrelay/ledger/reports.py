"""Spend reports: the ledger's attempts summed by any of team, vendor, model group, deployment, key and region over
a time window, as rows for JSON and as a plain-text table.

Only attempt records (attempt > 0) are summed: they carry each cloud's usage, hedges and failovers included, while
the request record (attempt 0) repeats their totals. Reserved hours in the window are amortised first, so the
effective cost is final for every hour that is over."""

from __future__ import annotations

import datetime
import re
from typing import Any

from .commitments import amortise
from .money import cents
from .store import LedgerStore

DIMENSIONS = {"team": "team", "vendor": "vendor", "model_group": "model_group", "deployment": "deployment",
              "key": "key_name", "region": "region"}
MEASURES = ("requests", "attempts", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens",
            "list_usd", "billed_usd", "effective_usd")
_SUMS = ("COUNT(DISTINCT request_id), COUNT(*), SUM(input_tokens), SUM(cached_tokens), SUM(cache_write_tokens), "
         "SUM(output_tokens), SUM(list_cost_usd), SUM(billed_cost_usd), SUM(effective_cost_usd)")
_WINDOW = "attempt > 0 AND started_at >= ? AND started_at < ?"
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ReportError(ValueError):
    """A report asked for something that does not exist (an unknown dimension, a time that does not parse)."""


def parse_dimensions(text: str | None) -> tuple[str, ...]:
    if not text:
        return ("team",)
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown or not names:
        raise ReportError(f"cannot group by {', '.join(unknown) or text!r}; choose among {', '.join(DIMENSIONS)}")
    return tuple(dict.fromkeys(names))


def parse_time(text: str, now: float) -> float:
    """`7d`, `24h`, `30m`, `2w` (that long before now), `now`, a date (`2026-11-01`, midnight UTC) or a UTC time
    (`2026-11-01T12:00:00Z`); epoch seconds."""
    text = text.strip()
    if text == "now":
        return now
    span = _SPAN.match(text)
    if span:
        return now - float(span.group(1)) * _SECONDS[span.group(2)]
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"cannot read the time {text!r}: use 7d, 24h, 30m, a date (2026-11-01) or "
                          "2026-11-01T12:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def spend(store: LedgerStore, commitments: tuple, by: tuple[str, ...], since: float,
          until: float) -> list[dict[str, Any]]:
    """One row per combination of the `by` dimensions, dearest (billed) first; costs in USD, unrounded."""
    if until <= since:
        raise ReportError("the report's end must be after its start")
    amortise(store, commitments, since, until)
    columns = ", ".join(DIMENSIONS[name] for name in by)
    found = store.rows(f"SELECT {columns}, {_SUMS} FROM {{t}} WHERE {_WINDOW} GROUP BY {columns}", (since, until))
    rows = [{**dict(zip(by, row[:len(by)])), **_measures(row[len(by):])} for row in found]
    rows.sort(key=lambda r: (-r["billed_usd"], -r["effective_usd"], [str(r[n]) for n in by]))
    return rows


def spent_by_owner(store: LedgerStore, since: float, until: float) -> list[tuple]:
    """(key name, team, deployment, list USD, billed USD) summed over the attempts that began in [since, until):
    what the keys' and teams' budgets counted (the seed of budget counters that began empty:
    governance/seeding.py)."""
    return store.rows(f"SELECT key_name, team, deployment, SUM(list_cost_usd), SUM(billed_cost_usd) FROM {{t}} "
                      f"WHERE {_WINDOW} GROUP BY key_name, team, deployment", (since, until))


def totals(store: LedgerStore, since: float, until: float) -> dict[str, Any]:
    """The window's totals (a request counted once, even when its attempts fall in several rows)."""
    return _measures(store.rows(f"SELECT {_SUMS} FROM {{t}} WHERE {_WINDOW}", (since, until))[0])


def _measures(values: tuple) -> dict[str, Any]:
    return {name: float(value or 0) if name.endswith("_usd") else int(value or 0)
            for name, value in zip(MEASURES, values)}


def render(rows: list[dict[str, Any]], by: tuple[str, ...], total: dict[str, Any]) -> str:
    """A plain-text table, costs to the cent, with a total line."""
    if not rows:
        return "no usage recorded in this window"
    head = [*by, "requests", "input", "cached", "cache_write", "output", "list $", "billed $", "effective $"]
    body = [_cells(row, by) for row in rows]
    body.append(_cells({**{n: "total" if i == 0 else "" for i, n in enumerate(by)}, **total}, by))
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    numeric = range(len(by), len(head))
    lines = ["  ".join(_pad(text, widths[i], i in numeric) for i, text in enumerate(line)) for line in [head, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(lines)


def _cells(row: dict[str, Any], by: tuple[str, ...]) -> list[str]:
    labels = ["-" if row[name] is None else str(row[name]) for name in by]
    counts = [f"{row[name]:,}" for name in ("requests", "input_tokens", "cached_tokens", "cache_write_tokens",
                                          "output_tokens")]
    return labels + counts + [f"{cents(row[name]):,}" for name in ("list_usd", "billed_usd", "effective_usd")]


def _pad(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)


def as_json(rows: list[dict[str, Any]], total: dict[str, Any], by: tuple[str, ...], since: float,
            until: float) -> dict[str, Any]:
    """What `--json` and GET /admin/spend answer: costs as decimal strings to the cent and unrounded numbers."""
    def money(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name in ("list_usd", "billed_usd", "effective_usd"):
            out[name] = str(cents(row[name]))
            out[name.replace("_usd", "_usd_exact")] = row[name]
        return out

    return {"by": list(by), "since": iso(since), "until": iso(until), "rows": [money(r) for r in rows],
            "total": money(total)}


def iso(epoch: float) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SSZ`."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
