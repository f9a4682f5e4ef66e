"""The spool's lines read back (their format: record.py): rows in schema.COLUMN_NAMES order, whatever the line kind
that carried them, for the shipper and for the recovery of a dead process's spool.

What the request path left out to stay cheap is derived here, off it: latencies from the times, and both records
of a one-attempt request ("k") from that line joined with its attempt's "o" line, which the same process wrote
before it. The reader passes `opens` ((request id, attempt) -> "o" line) and keeps it across calls; read_lines
adds every "o" line it reads. A "k" line whose "o" line is not there was committed already: an "o" line's segment
is deleted only once the attempt's record is committed, so only an adopted spool can show one (its process died
between the commit and deleting the later segment), and its rows are in the table.
"""

from __future__ import annotations

import logging

import orjson

from .record import HEADER, ONE, ONE_FIELDS, OPEN, RECORD, REFUSED
from .schema import COLUMN_NAMES

log = logging.getLogger("skyrelay.ledger")

OpenLines = dict  # (request id, attempt) -> the "o" line

# Positions in an "o" line (record.py).
O_RID, O_NUMBER, O_STARTED, O_KEY, O_TEAM, O_GROUP, O_VENDOR, O_DEPLOYMENT, O_REGION, O_TIER = range(1, 11)
O_EST_IN, O_EST_OUT, O_STREAMED = 11, 12, 13

# Positions in a "k" line: after its kind and request id, record.ONE_FIELDS.
_K = {name: place for place, name in enumerate(ONE_FIELDS, 2)}
(_K_STARTED, _K_ENDED, _K_ATTEMPT_ENDED, _K_FIRST_OUTPUT, _K_HTTP, _K_SERVED, _K_STATUS, _K_ERROR,
 _K_ATTEMPT_STATUS, _K_ATTEMPT_ERROR) = (_K[name] for name in ONE_FIELDS[:10])
_K_MONEY = slice(_K["input_tokens"], _K["commitment"] + 1)  # the 9 money columns, in schema order
_NO_CLOUD = (None, None, None, None)
_loads = orjson.loads


def read_lines(data: bytes, opens: OpenLines, pairs: list | None = None) -> tuple[list[list], list[list]]:
    """The records in `data` as rows (schema.COLUMN_NAMES order, whatever line carried them), and the "o" lines it
    holds (added to `opens` too). Each segment's header line sets the columns its "r" lines carry. The zero bytes
    of a segment's unwritten tail (or of pages a power loss never wrote) are skipped, and so is any torn line.
    With `pairs`, a "k" line's two records are appended there unjoined instead, as the "k" line followed by its
    "o" line (one list, pair_sql's parameters: the database joins them). Lists, not a generator: the shipper
    reads every line of the spool, so each step counts."""
    rows: list[list] = []
    opened: list[list] = []
    columns = COLUMN_NAMES
    for raw in data.split(b"\n"):
        raw = raw.strip(b"\0")
        if not raw:
            continue
        try:
            line = _loads(raw)
        except orjson.JSONDecodeError:
            log.warning("skipped a torn line in the ledger spool (%d bytes)", len(raw))
            continue
        kind = line[0]
        if kind == ONE:
            attempt = opens.get((line[1], 1))
            if attempt is not None:
                if pairs is None:
                    rows += one_attempt(line, attempt)
                else:
                    pairs.append(line + attempt)
        elif kind == OPEN:
            opens[(line[O_RID], line[O_NUMBER])] = line
            opened.append(line)
        elif kind == RECORD:
            del line[0]  # the row, in place
            rows.append(line if columns is COLUMN_NAMES else _remap(line, columns))
        elif kind == REFUSED:
            rows.append(refused(line))
        elif kind == _V1_ONE:
            rows += _v1_one(line, columns)
        elif kind == HEADER:
            columns = tuple(line[3])
            if columns == COLUMN_NAMES:
                columns = COLUMN_NAMES  # the same object: the fast path above tests identity
        else:
            log.warning("skipped a ledger spool line of an unknown kind %r", str(kind)[:20])
    return rows, opened


def one_attempt(line: list, opened: list) -> tuple[tuple, tuple]:
    """The attempt's record and its request's, from a "k" line and the attempt's "o" line (the attempt first, as
    when they are written apart: a reader closes the attempt, then the request)."""
    rid, started, ended, attempt_ended, first = line[1], line[_K_STARTED], line[_K_ENDED], line[_K_ATTEMPT_ENDED], \
        line[_K_FIRST_OUTPUT]
    money = line[_K_MONEY]
    key, team, group, streamed = opened[O_KEY], opened[O_TEAM], opened[O_GROUP], opened[O_STREAMED]
    cloud = opened[O_VENDOR:O_TIER + 1]  # vendor, deployment, region, tier
    attempt_started = opened[O_STARTED]
    attempt = (rid, 1, attempt_started, attempt_ended, key, team, group, *cloud, line[_K_ATTEMPT_STATUS],
               line[_K_ATTEMPT_ERROR], None, *money, (attempt_ended - attempt_started) * 1000,
               (first - attempt_started) * 1000 if first is not None else None, streamed, 0)
    request = (rid, 0, started, ended, key, team, group, *(cloud if line[_K_SERVED] else _NO_CLOUD),
               line[_K_STATUS], line[_K_ERROR], line[_K_HTTP], *money, (ended - started) * 1000,
               (first - started) * 1000 if first is not None else None, streamed, 0)
    return attempt, request


# one_attempt's join as SQL expressions, for a database to compute both rows from a pair (read_lines): the same
# values (IEEE differences and products, NULL where Python has None), with ?N the pair's Nth value, 1-based.
_PAIR_WIDTH = 2 + len(ONE_FIELDS)  # the "k" line's values; its "o" line's follow


def pair_sql(first: int = 1) -> tuple[str, str]:
    """The VALUES of the attempt's and the request's rows of a pair whose values start at ?`first`."""
    def k(place: int) -> str:
        return f"?{first + place}"

    def o(place: int) -> str:
        return f"?{first + _PAIR_WIDTH + place}"

    money = ", ".join(k(place) for place in range(_K_MONEY.start, _K_MONEY.stop))
    key_team_group = f"{o(O_KEY)}, {o(O_TEAM)}, {o(O_GROUP)}"
    cloud = [o(place) for place in range(O_VENDOR, O_TIER + 1)]
    served_cloud = ", ".join(f"CASE WHEN {k(_K_SERVED)} THEN {value} END" for value in cloud)
    attempt = (f"({k(1)}, 1, {o(O_STARTED)}, {k(_K_ATTEMPT_ENDED)}, {key_team_group}, {', '.join(cloud)}, "
               f"{k(_K_ATTEMPT_STATUS)}, {k(_K_ATTEMPT_ERROR)}, NULL, {money}, "
               f"({k(_K_ATTEMPT_ENDED)} - {o(O_STARTED)}) * 1000, ({k(_K_FIRST_OUTPUT)} - {o(O_STARTED)}) * 1000, "
               f"{o(O_STREAMED)}, 0)")
    request = (f"({k(1)}, 0, {k(_K_STARTED)}, {k(_K_ENDED)}, {key_team_group}, {served_cloud}, {k(_K_STATUS)}, "
               f"{k(_K_ERROR)}, {k(_K_HTTP)}, {money}, ({k(_K_ENDED)} - {k(_K_STARTED)}) * 1000, "
               f"({k(_K_FIRST_OUTPUT)} - {k(_K_STARTED)}) * 1000, {o(O_STREAMED)}, 0)")
    return attempt, request


PAIR_VALUES = _PAIR_WIDTH + O_STREAMED + 1  # a pair's length: its last value is the last one pair_sql uses


def refused(line: list) -> tuple:
    """The record of a request refused before any model group: no cloud, no tokens, no cost."""
    _, rid, at, key, team, error_kind, status = line
    return (rid, 0, at, at, key, team, None, None, None, None, None, "refused" if status < 500 else "failed",
            error_kind, status, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, None, None, None, 0, 0)


# Version 1's one-attempt line, still read (a spool left by a process of that version, adopted after an upgrade):
# ["q", <the request's columns>, <its attempt's own values, _V1_OWN>].
_V1_ONE = "q"
_V1_OWN = ("started_at", "ended_at", "status", "error_kind", "latency_ms", "ttft_ms", "hedged", "vendor",
           "deployment", "region", "tier")


def _v1_one(line: list, columns: tuple) -> tuple[list, list]:
    width = len(columns) + 1
    request = dict(zip(columns, line[1:width]))
    attempt = {**request, "attempt": 1, "http_status": None, **dict(zip(_V1_OWN, line[width:]))}
    return _ordered(attempt), _ordered(request)


def _remap(values: list, columns: tuple) -> list:
    """A record written under another column list, in this version's (a column it lacks takes its default)."""
    return _ordered(dict(zip(columns, values)))


def _ordered(by_name: dict) -> list:
    return [by_name.get(name, 0) for name in COLUMN_NAMES]
