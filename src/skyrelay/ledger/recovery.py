"""What a dead process left in its spool, as rows to ship: its finished records as they are, and every attempt it
opened and never finished closed as `interrupted`, with the usage its quota reservation estimated (the cloud may
have served and billed it: counted, and marked `estimated`). A request left without its own record gets one too,
`interrupted`, summing its attempts."""

from __future__ import annotations

from typing import Any, Callable

from ..canonical import Usage
from .lines import (O_DEPLOYMENT, O_EST_IN, O_EST_OUT, O_GROUP, O_KEY, O_NUMBER, O_REGION, O_RID, O_STARTED,
                    O_STREAMED, O_TEAM, O_TIER, O_VENDOR, read_lines)

# Positions in a record (schema.COLUMN_NAMES, after the leading "r").
_R_STARTED, _R_ENDED = 2, 3
_R_TOKENS = slice(14, 22)  # input, cached, cache write, output, estimated, list, billed, effective
_R_HEDGED = 26

# Prices one usage: (deployment name, usage, epoch seconds, estimated) -> the 9 money values of record.money_of.
Pricer = Callable[[str, Any, float, int], tuple]


class Recovery:
    """Fed an orphaned spool's files in order, each `feed` returns its finished rows to ship; `leftovers()` then
    closes what was still open. Only the attempts in flight at the death are kept in memory, whatever the spool's
    size."""

    def __init__(self, price: Pricer):
        self.price = price
        self.opens: dict[tuple[str, int], list] = {}
        self.attempts: dict[str, list[list]] = {}  # attempt rows of requests whose own record was not seen yet
        self.last_seen = 0.0  # the latest time the dead process wrote: when it was last known alive

    def feed(self, data: bytes) -> list:
        rows, opened = read_lines(data, self.opens)  # which adds the "o" lines to self.opens
        for line in opened:
            self.last_seen = max(self.last_seen, line[O_STARTED])
        for row in rows:
            rid, number = row[0], row[1]
            self.last_seen = max(self.last_seen, row[_R_ENDED] or row[_R_STARTED])
            if number == 0:
                self.attempts.pop(rid, None)
            else:
                self.opens.pop((rid, number), None)
                self.attempts.setdefault(rid, []).append(row)
        return rows

    def leftovers(self) -> list[list]:
        """The open attempts as `interrupted`, and a record for each request they belonged to. A request whose own
        record was written (a hedge still in flight when it ended) keeps it: the table keeps one row per key."""
        interrupted = [self._interrupted(line) for line in self.opens.values()]
        by_request: dict[str, list[list]] = {}
        for row in interrupted:
            by_request.setdefault(row[0], []).append(row)
        return interrupted + [_request(self.attempts.get(rid, []) + rows) for rid, rows in by_request.items()]

    def _interrupted(self, line: list) -> list:
        usage = Usage(max(0, line[O_EST_IN]), max(0, line[O_EST_OUT]))
        money = self.price(line[O_DEPLOYMENT], usage, line[O_STARTED], 1)
        ended = max(self.last_seen, line[O_STARTED])
        return [line[O_RID], line[O_NUMBER], line[O_STARTED], ended, line[O_KEY], line[O_TEAM],
                line[O_GROUP], line[O_VENDOR], line[O_DEPLOYMENT], line[O_REGION], line[O_TIER],
                "interrupted", None, None, *money, None, None, line[O_STREAMED], 0]


def _request(attempts: list[list]) -> list:
    """The record of a request that died with its process: its attempts summed, under the last one's cloud."""
    attempts.sort(key=lambda row: row[1])
    last = attempts[-1]
    sums = [sum(row[_R_TOKENS][i] for row in attempts) for i in range(8)]
    sums[4] = 1 if any(row[18] for row in attempts) else 0  # estimated
    commitment = next((row[22] for row in reversed(attempts) if row[22]), None)
    return [last[0], 0, attempts[0][_R_STARTED], last[_R_ENDED], last[4], last[5], last[6], last[7], last[8],
            last[9], last[10], "interrupted", None, None, *sums, commitment, None, None, last[25],
            1 if any(row[_R_HEDGED] for row in attempts) else 0]
