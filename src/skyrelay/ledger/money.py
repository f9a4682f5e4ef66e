"""Usage to money: the one place a ledger record's list, billed and effective costs are computed.

- list: the deployment's list price, cache reads and cache writes priced apart (skyrelay.pricing).
- billed: what the vendor bills for this usage: list x (1 - price.discount), and for a deployment a spend
  commitment covers at `when`, also x (1 - commitment.discount), drawn from that commitment. A deployment covered
  by a reserved commitment at `when` bills 0: its capacity is paid by the hour whatever the traffic.
- effective: what the usage really cost. Billed, except under a reserved commitment, where it is the usage's share
  of the hour's cost; that share depends on everything else the hour served, so it is 0 here and filled in by the
  amortisation (skyrelay.ledger.commitments.amortise) once the hour's records are in the database.

When two commitments cover a deployment at once, a reserved one wins (its capacity serves first), then the first in
file order. Amounts are rounded to 1e-10 USD so that binary noise never reaches a cent (reports round half up).
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..pricing import list_cost_micro_usd

CENT = Decimal("0.01")
DIGITS = 10  # decimal places of USD kept in a record: far below a cent, far above a double's noise
_SCALE = 10.0 ** DIGITS


class _Cover:
    """One commitment as record_costs reads it: epoch bounds and the factor it applies to billed cost."""

    __slots__ = ("name", "reserved", "starts", "ends", "factor")

    def __init__(self, commitment: Any):
        self.name = commitment.name
        self.reserved = commitment.kind == "reserved"
        self.starts = epoch(commitment.start)
        self.ends = epoch(commitment.end)
        self.factor = 0.0 if self.reserved else 1.0 - commitment.discount


def epoch(day: datetime.date) -> float:
    """Midnight UTC of a date, in epoch seconds."""
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


def cents(usd: float) -> Decimal:
    """An amount rounded to the cent, half up, from its shortest decimal form (0.005 is half a cent, whatever its
    binary value)."""
    return Decimal(repr(float(usd))).quantize(CENT, rounding=ROUND_HALF_UP)


# commitments tuple id -> (the tuple, kept alive so its id is not reused; deployment name -> covers, reserved first)
_COVERS: dict[int, tuple[tuple, dict[str, tuple[_Cover, ...]]]] = {}


def covers(commitments: tuple, deployment: str) -> tuple[_Cover, ...]:
    """The commitments that may cover `deployment`, reserved first: built once per configuration, then a lookup."""
    entry = _COVERS.get(id(commitments))
    if entry is None or entry[0] is not commitments:
        index: dict[str, list[_Cover]] = {}
        for commitment in sorted(commitments, key=lambda c: c.kind != "reserved"):
            for name in commitment.deployments:
                index.setdefault(name, []).append(_Cover(commitment))
        entry = (commitments, {name: tuple(found) for name, found in index.items()})
        _COVERS[id(commitments)] = entry
    return entry[1].get(deployment, ())


def active_cover(commitments: tuple, deployment: str, when: float) -> _Cover | None:
    for cover in covers(commitments, deployment):
        if cover.starts <= when < cover.ends:
            return cover
    return None


def record_costs(deployment: Any, usage: Any, when: datetime.datetime | float,
                 commitments: tuple = ()) -> tuple[float, float, float, str | None]:
    """(list_usd, billed_usd, effective_usd, commitment name) of `usage` served by `deployment` at `when` (a UTC
    datetime, or epoch seconds). Effective is 0 under a reserved commitment until the amortisation fills it."""
    return usage_money(deployment, usage, when, commitments)[5:]


def usage_money(deployment: Any, usage: Any, when: datetime.datetime | float, commitments: tuple = (),
                estimated: int = 0) -> tuple:
    """A ledger record's money columns: (input, cached, cache write, output tokens, `estimated`, then
    record_costs's four). Amounts are kept to DIGITS decimal places (int(usd * 1e10 + 0.5) / 1e10: binary noise
    never moves a half cent; exact below 1e5 USD, far above a record, and several times cheaper than round()).
    The request path prices every attempt here, so it is written flat: no helper calls but the list price."""
    tokens_in, cached, written, out = usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, \
        usage.output_tokens
    price = deployment.price
    listed = int(list_cost_micro_usd(price, tokens_in, out, cached, written) / 1e6 * _SCALE + 0.5) / _SCALE
    billed = listed * (1.0 - price.discount)
    if commitments:
        cover = active_cover(commitments, deployment.name,
                             when if isinstance(when, (int, float)) else when.timestamp())
        if cover is not None:
            billed = int(billed * cover.factor * _SCALE + 0.5) / _SCALE
            return tokens_in, cached, written, out, estimated, listed, billed, billed, cover.name
    billed = int(billed * _SCALE + 0.5) / _SCALE
    return tokens_in, cached, written, out, estimated, listed, billed, billed, None
