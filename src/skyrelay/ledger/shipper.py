"""The shipper: a thread that reads the spool behind the request path and commits its finished records to the
database in batches, then deletes the segments it no longer needs.

It first adopts the spools of dead processes (recovery.py), then follows this process's own. Its position in the
spool moves only after a commit, so a database that is down leaves everything where it was: requests keep
flowing, the spool grows, and the next successful pass ships the backlog. An attempt still open pins its segment
until its record is committed (so a process killed now still leaves its open attempt on disk for recovery).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .lines import read_lines
from .recovery import Pricer, Recovery
from .sinks import Sink
from .spool import Orphan, Segment, Spool, orphans

log = logging.getLogger("skyrelay.ledger")

SHIP_INTERVAL = 0.2  # seconds between passes at most: how far behind the request path the database is, at most
# Under load a pass starts as soon as SHIP_BYTES of spool wait (looked at every POLL_INTERVAL), so each pass stays
# short: the shipper shares the event loop's core and its GIL, and a pass of 0.2 s of traffic at 11k requests/s
# (~20 ms of work) held the loop long enough to double the p99 latency at 32 connections (10 ms, against 4-5 ms
# with the ledger off; ~7 ms with these passes, at the same CPU per request: docs/performance.md).
POLL_INTERVAL = 0.02
SHIP_BYTES = 64 << 10  # a few hundred requests' lines (a one-attempt request writes ~250 bytes)
BATCH_BYTES = 1 << 20  # of spool read (and rows committed) per transaction
ROWS_PER_COMMIT = 5000  # when shipping an adopted spool
RETRY_MIN, RETRY_MAX = 0.5, 5.0  # seconds between tries while the database is unreachable


class Shipper:
    def __init__(self, spool: Spool, sink: Sink, price: Pricer):
        self.spool = spool
        self.sink = sink
        self.price = price
        first = spool.segments[0]
        self._segment, self._offset = first.index, 0  # the next byte to ship
        self._opens: dict[tuple[str, int], int] = {}  # attempts opened, not finished -> their segment's index
        self._open_lines: dict[tuple[str, int], list] = {}  # and their "o" lines, which "k" lines join (lines.py)
        self._orphans: list[Orphan] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skyrelay-ledger-shipper", daemon=True)
        self.shipped = 0  # records committed, by this process
        self.recovered = 0  # of which from dead processes' spools
        self.cpu_seconds = 0.0  # this thread's CPU time: the shipper's cost, apart from the request path's
        self.database_error: str | None = None  # the error class while the database is unreachable, else None
        self.clean = False  # after stop: everything shipped and nothing open
        self.adopted = threading.Event()  # set once the dead processes' spools found at start are committed
        self.caught_up_at = 0.0  # when the last pass that left nothing waiting began: what was spooled before is in

    def start(self) -> None:
        self._orphans = orphans(self.spool.directory, self.spool.owner)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = RETRY_MIN
        while True:
            stopping = self._stop.is_set()
            began = time.thread_time()
            started = time.time()
            try:
                while self._orphans:
                    self._ship_orphan(self._orphans[0])
                    self._orphans.pop(0)
                self.adopted.set()  # the table now holds every record written before this process began
                caught_up = self._ship_own()
            except Exception as exc:  # noqa: BLE001  (the database, down or refusing: try again later)
                self._failed(exc)
                caught_up = False
            else:
                if self.database_error is not None:
                    log.warning("ledger: the database is reachable again; the spool's backlog is shipped")
                self.database_error = None
                wait = RETRY_MIN
                if caught_up:
                    self.caught_up_at = started
            self.cpu_seconds += time.thread_time() - began
            if stopping:
                break
            if self.database_error is not None:
                self._stop.wait(wait)
                wait = min(wait * 2, RETRY_MAX)
            elif caught_up:
                self._wait_for_work()
        for orphan in self._orphans:  # not shipped: left for the next start
            orphan.finish(shipped=False)
        self.clean = self.database_error is None and not self._opens and not self._orphans
        self.sink.close()

    def _wait_for_work(self) -> None:
        """Until SHIP_INTERVAL has passed, SHIP_BYTES wait in the spool, or stop is asked."""
        deadline = time.monotonic() + SHIP_INTERVAL
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._waiting_bytes() >= SHIP_BYTES or self._stop.wait(min(POLL_INTERVAL, left)):
                return

    def _waiting_bytes(self) -> int:
        """Spool bytes written past the shipped position (a later segment counts as a full batch)."""
        live = self.spool.segments[-1]
        return live.end - self._offset if live.index == self._segment else SHIP_BYTES

    def _failed(self, exc: Exception) -> None:
        if self.database_error is None:
            # The class and the driver's first line only: a connection error names host and port, never a password.
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            log.warning("ledger: cannot write to the database (%s: %s); records stay in the spool and are shipped "
                        "when it is back", type(exc).__name__, detail)
        self.database_error = type(exc).__name__

    # --- this process's spool -----------------------------------------------------------------------------------

    def _ship_own(self) -> bool:
        """One batch; True when nothing more was waiting."""
        segments = list(self.spool.segments)
        rows, pairs, opened, finished, position, full = self._read(segments)
        if rows or pairs:
            self.sink.write(rows, pairs)
            self.shipped += len(rows) + 2 * len(pairs)
        self._opens.update(opened)
        for key in finished:
            self._opens.pop(key, None)
            self._open_lines.pop(key, None)
        self._segment, self._offset = position
        self._delete_shipped(segments)
        return not full

    def _read(self, segments: list[Segment]):
        rows: list = []
        pairs: list = []  # one-attempt requests' two records, unjoined: the sink joins them (when it can)
        collect = pairs if self.sink.joins_pairs else None
        opened: dict[tuple[str, int], int] = {}
        finished: list[tuple[str, int]] = []
        index, offset = self._segment, self._offset
        budget = BATCH_BYTES
        for seg in segments:
            if seg.index < index:
                continue
            sealed = seg.sealed  # read before `end`: once sealed, `end` is final
            end = seg.end
            data = seg.read(offset, min(end, offset + budget))
            cut = data.rfind(b"\n") + 1
            done = len(pairs)
            found, opens = read_lines(data[:cut], self._open_lines, collect)
            for line in opens:
                opened[(line[1], line[2])] = seg.index
            for pair in pairs[done:]:  # a pair's attempt is its request's first
                key = (pair[1], 1)
                opened.pop(key, None)
                finished.append(key)
            for row in found:
                if row[1]:  # an attempt: it no longer pins its segment, its "o" line is no longer joined
                    key = (row[0], row[1])
                    opened.pop(key, None)
                    finished.append(key)
            rows += found
            offset += cut
            budget -= cut
            if offset < end or not sealed:
                return rows, pairs, opened, finished, (seg.index, offset), offset < end
            index, offset = seg.index + 1, 0
        return rows, pairs, opened, finished, (index, offset), False

    def _delete_shipped(self, segments: list[Segment]) -> None:
        pinned = set(self._opens.values())
        for seg in segments:
            if seg.sealed and seg.index < self._segment and seg.index not in pinned:
                self.spool.release(seg)

    # --- dead processes' spools ---------------------------------------------------------------------------------

    def _ship_orphan(self, orphan: Orphan) -> None:
        """All of it, then its files go; a failure half-way ships it all again later (the table keeps one row)."""
        recovery = Recovery(self.price)
        count = 0
        for path in orphan.paths:
            count += self._write_all(recovery.feed(orphan.read(path)))
        leftovers = recovery.leftovers()
        count += self._write_all(leftovers)
        orphan.finish(shipped=True)
        self.shipped += count
        self.recovered += count
        interrupted = sum(1 for row in leftovers if row[1] > 0)
        # An empty spool of a cleanly stopped process is routine; records recovered are worth a warning.
        (log.warning if count else log.info)(
            "ledger: shipped %d records left by a stopped process (spool %s), %d attempts interrupted",
            count, orphan.owner, interrupted)

    def _write_all(self, rows: list) -> int:
        for start in range(0, len(rows), ROWS_PER_COMMIT):
            self.sink.write(rows[start:start + ROWS_PER_COMMIT])
        return len(rows)

    def status(self) -> dict[str, Any]:
        return {"database": "unreachable" if self.database_error else "ok", "shipped": self.shipped,
                "recovered": self.recovered, "open_attempts": len(self._opens),
                "shipper_cpu_seconds": round(self.cpu_seconds, 6)}
