"""GET /admin/spend and GET /admin/commitments: the ledger's reports as JSON, for the master key (or a key with
`role: admin`). Each call reads the database on its own connection in a worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from .. import errors
from ..ledger import commitments as burn
from ..ledger import reports
from ..ledger.store import LedgerStore
from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import Route, json_response
from .burn_down_feed import BurnDownFeed

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger("skyrelay.ledger")
SPEND_PARAMS = ("by", "since", "until")


def register(gateway: "Gateway") -> None:
    config = gateway.config

    def store() -> LedgerStore:
        return LedgerStore.from_url(config.database.url, create=False)

    async def spend(request: Request) -> Response:
        require_admin(request)
        query = _query(request.query, SPEND_PARAMS)
        now = time.time()
        try:
            by = reports.parse_dimensions(query.get("by"))
            since = reports.parse_time(query.get("since", "7d"), now)
            until = reports.parse_time(query.get("until", "now"), now)
        except reports.ReportError as exc:
            raise errors.InvalidRequest(str(exc)) from None

        def read() -> dict:
            with store() as ledger:
                rows = reports.spend(ledger, config.commitments, by, since, until)
                return reports.as_json(rows, reports.totals(ledger, since, until), by, since, until)

        try:
            return json_response(await _off_loop(read))
        except reports.ReportError as exc:
            raise errors.InvalidRequest(str(exc)) from None

    async def commitments(request: Request) -> Response:
        require_admin(request)
        _query(request.query, ())

        def read() -> dict:
            with store() as ledger:
                found = burn.burn_down(ledger, config.commitments, time.time())
            return {"commitments": [b.as_dict() for b in found]}

        return json_response(await _off_loop(read))

    if config.commitments and gateway.ledger is not None:  # the dashboard's burn-down and its gauges
        def read_burn_down() -> list:
            with store() as ledger:
                return burn.burn_down(ledger, config.commitments, time.time())

        feed = BurnDownFeed(read_burn_down)
        gateway.telemetry.stats_sources["commitments"] = feed.for_dashboard
        gateway.telemetry.gauge_sources.append(feed.gauges)

    gateway.add_route("/admin/spend", Route("GET", spend, protocol.render_error))
    gateway.add_route("/admin/commitments", Route("GET", commitments, protocol.render_error))


async def _off_loop(read):
    """Run a report in a worker thread; a database that cannot be reached is a 503 that says so."""
    try:
        return await asyncio.to_thread(read)
    except reports.ReportError:
        raise
    except Exception as exc:  # sqlite3 and psycopg raise their own OperationalError families
        if not _database_error(exc):
            raise
        log.warning("ledger report failed: the database is unavailable (%s)", type(exc).__name__)
        raise errors.DatabaseUnavailable("the ledger's database is unavailable; try again later") from None


def _database_error(exc: Exception) -> bool:
    module = type(exc).__module__
    return module.startswith(("sqlite3", "psycopg")) or isinstance(exc, OSError)


def require_admin(request: Request) -> None:
    """The master key authenticates as no principal; a declared key needs `role: admin` to read the ledger."""
    principal = request.principal
    if principal is not None and getattr(principal, "role", "user") != "admin":
        raise errors.PermissionDenied("the ledger's reports need the master key or a key with role: admin")


def _query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    try:
        parsed = parse_qs(text or "", keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ValueError:
        raise errors.InvalidRequest("the query string has too many parameters") from None
    unknown = sorted(set(parsed) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise errors.InvalidRequest(f"unknown query parameter {unknown[0]!r} (accepted: {accepted})",
                                    param=unknown[0])
    return {name: values[-1] for name, values in parsed.items()}
