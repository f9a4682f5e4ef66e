"""The ledger as the gateway runs it: the recorder on the request path, the spool on disk, a syncer thread that
makes the spool durable every `fsync_interval_ms`, and the shipper thread that commits it to the database."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..db import parse_url
from .record import Recorder, header, money_of
from .shipper import Shipper
from .sinks import Sink
from .spool import Spool

log = logging.getLogger("skyrelay.ledger")


class LedgerUnavailable(Exception):
    """The spool cannot be written: the gateway does not start without its ledger (or `ledger.enabled: false`)."""


class Ledger:
    def __init__(self, config: Any, clock: Any):
        self.settings = config.ledger
        self.database = parse_url(config.database.url)
        self.deployments = {d.name: d for d in config.deployments()}
        self.commitments = config.commitments
        self.clock = clock
        self.spool: Spool | None = None
        self.recorder: Recorder | None = None
        self.shipper: Shipper | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    def start(self) -> Recorder:
        """Open this process's spool (and adopt dead processes'); the recorder the dispatcher writes through."""
        settings = self.settings
        try:
            self.spool = spool = Spool(settings.spool_dir, settings.segment_bytes, header)
        except OSError as exc:  # the operator's to fix: said in one line, at start, not found out at the first request
            raise LedgerUnavailable(f"cannot write the ledger's spool in ledger.spool_dir {settings.spool_dir!r}: "
                                    f"{exc.strerror or exc}") from None
        self.recorder = Recorder(spool.append, self.deployments, self.commitments, self.clock)
        self.recorder.offset = time.time() - self.clock()
        self.shipper = Shipper(spool, Sink(self.database), self._price)
        self._syncer = threading.Thread(target=self._sync, name="skyrelay-ledger-syncer", daemon=True)
        self._syncer.start()
        self.shipper.start()
        return self.recorder

    def reprice(self, config: Any) -> None:
        """A reloaded configuration's deployments (and their prices) for the records from now on. A deployment the
        reload removed keeps its last price: its requests in flight still end, and its cloud still bills them."""
        self.deployments = {**self.deployments, **{d.name: d for d in config.deployments()}}
        if self.recorder is not None:
            self.recorder.deployments = self.deployments

    def on_close(self, ctx: Any, status: int) -> None:
        self.recorder.request_closed(ctx, status)

    def _price(self, deployment: str, usage: Any, when: float, estimated: int) -> tuple:
        return money_of(self.deployments.get(deployment), usage, when, self.commitments, estimated)

    def _sync(self) -> None:
        interval = self.settings.fsync_interval_ms / 1000
        while not self._stop.wait(interval):
            self.spool.sync()
            self.spool.prepare()
            self.recorder.offset = time.time() - self.clock()  # follows the wall clock's corrections

    def status(self) -> dict[str, Any]:
        """For /health/ready: how far behind the database is, and whether the spool passed its limit."""
        spool = self.spool
        on_disk = spool.bytes_on_disk() if spool is not None else 0
        body = {"spool_bytes": on_disk, "max_spool_bytes": self.settings.max_spool_bytes,
                "over_limit": on_disk > self.settings.max_spool_bytes, "lost": spool.lost if spool else 0}
        if self.shipper is not None:
            body.update(self.shipper.status())
        return body

    def exposition(self) -> str:
        """The ledger's lines of /metrics (Prometheus text)."""
        status = self.status()
        lines = []
        for name, kind, help_text, value in (
            ("skyrelay_ledger_spool_bytes", "gauge", "Size of this process's spool files on disk.",
             status["spool_bytes"]),
            ("skyrelay_ledger_spool_over_limit", "gauge", "1 while the spool is past ledger.max_spool_bytes.",
             int(status["over_limit"])),
            ("skyrelay_ledger_database_up", "gauge", "0 while the shipper cannot write to the database.",
             int(status.get("database") == "ok")),
            ("skyrelay_ledger_open_attempts", "gauge", "Attempts in flight, in the spool and not finished yet.",
             status.get("open_attempts", 0)),
            ("skyrelay_ledger_records_shipped_total", "counter", "Records committed to the database.",
             status.get("shipped", 0)),
            ("skyrelay_ledger_records_recovered_total", "counter",
             "Of those, records left in the spool by processes that died.", status.get("recovered", 0)),
            ("skyrelay_ledger_records_lost_total", "counter",
             "Records that could not be spooled (the disk refused a new spool file).", status["lost"]),
            ("skyrelay_ledger_shipper_cpu_seconds_total", "counter", "CPU time of the shipper's thread.",
             status.get("shipper_cpu_seconds", 0.0)),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Ship what is left (if the database answers) and close the spool; what was not shipped stays on disk."""
        if self.spool is None:
            return
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        self.shipper.stop()
        self.spool.close(shipped=self.shipper.clean)
        self.spool = None


def build_ledger(config: Any, clock: Any) -> Ledger | None:
    return Ledger(config, clock) if config.ledger.enabled else None
