"""Commitments against the ledger: reserved capacity amortised over what it served, and every commitment's
burn-down (consumed, burn rate, projection, shortfall or overrun; for reserved capacity hours, tokens, utilisation
and the effective price per million tokens).

Amortisation is done when it is read: every spend report and export first amortises the hours it covers.
It is an idempotent UPDATE per (commitment, hour), so it can run any number of times, and a record shipped late
(after a database outage) is priced right by the next read of its hour. For one hour of a reserved commitment:
each attempt it served gets cost_per_hour x its tokens (input + output) / the hour's tokens, and each request
record the sum of its attempts' effective costs. An hour that served no token is paid for nothing: the burn-down
counts it against utilisation and the FOCUS export shows it as an Unused row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .money import cents, epoch
from .store import HOUR, LedgerStore

DAY = 86400.0
TOKENS = "(input_tokens + output_tokens)"
BAR_WIDTH = 30


def window(commitment: Any) -> tuple[float, float]:
    """The commitment's [start, end) in epoch seconds."""
    return epoch(commitment.start), epoch(commitment.end)


def amortise(store: LedgerStore, commitments: tuple, since: float, until: float) -> int:
    """Fill effective_cost_usd of the records reserved commitments served in the hours touching [since, until).
    Returns how many records changed (0 when the hours were amortised already: then it costs two queries per
    reserved commitment)."""
    changed = 0
    first_hour, end_hour = math.floor(since / HOUR), math.ceil(until / HOUR)
    for commitment in commitments:
        if commitment.kind != "reserved":
            continue
        starts, ends = window(commitment)
        low, high = max(first_hour * HOUR, starts), min(end_hour * HOUR, ends)
        if low < high:
            for hour, tokens in _hours_off(store, commitment, low, high):
                changed += _amortise_hour(store, commitment, hour * HOUR, tokens)
            changed += _sum_requests(store, commitment, low, high)
    return changed


_SCOPE = "commitment = ? AND attempt > 0 AND status <> 'open' AND started_at >= ? AND started_at < ?"


def _hours_off(store: LedgerStore, commitment: Any, low: float, high: float) -> list[tuple[int, int]]:
    """The hours of [low, high) whose attempts do not carry their share yet, with the tokens each served. One
    grouped scan: an hour is right when its attempts' costs add up to the hour's and every attempt with tokens
    carries the same cost per token (those without, none)."""
    per_token = f"CASE WHEN {TOKENS} > 0 THEN effective_cost_usd / {TOKENS} END"
    found = store.rows(
        f"SELECT {store.hour_of()}, SUM{TOKENS}, SUM(effective_cost_usd), MIN({per_token}), MAX({per_token}), "
        f"SUM(CASE WHEN {TOKENS} > 0 THEN 0 ELSE ABS(effective_cost_usd) END) FROM {{t}} WHERE {_SCOPE} GROUP BY 1",
        (commitment.name, low, high))
    off = []
    slack = 1e-9 * max(1.0, commitment.cost_per_hour)
    for hour, tokens, total, lowest, highest, idle in found:
        tokens = int(tokens or 0)
        if tokens:
            right = (abs(float(total) - commitment.cost_per_hour) <= slack
                     and (float(highest) - float(lowest)) * tokens <= slack and float(idle) <= slack)
        else:
            right = float(total or 0) <= slack
        if not right:
            off.append((int(hour), tokens))
    return off


def _amortise_hour(store: LedgerStore, commitment: Any, hour: float, tokens: int) -> int:
    rate = commitment.cost_per_hour / tokens if tokens else 0.0  # USD per token served in this hour
    return store.execute(
        f"UPDATE {{t}} SET effective_cost_usd = ? * {TOKENS} WHERE {_SCOPE} "
        f"AND ABS(effective_cost_usd - ? * {TOKENS}) > 1e-9", (rate, commitment.name, hour, hour + HOUR, rate))


def _sum_requests(store: LedgerStore, commitment: Any, low: float, high: float) -> int:
    """The request records of the commitment's attempts in [low, high) carry the sum of their attempts (also one
    shipped after its attempts were amortised)."""
    total = "(SELECT SUM(a.effective_cost_usd) FROM {t} a WHERE a.request_id = {t}.request_id AND a.attempt > 0)"
    return store.execute(
        f"UPDATE {{t}} SET effective_cost_usd = {total} WHERE attempt = 0 "
        f"AND request_id IN (SELECT request_id FROM {{t}} WHERE {_SCOPE}) AND ABS(effective_cost_usd - {total}) > 1e-9",
        (commitment.name, low, high))


@dataclass(frozen=True, slots=True)
class BurnDown:
    """One commitment's standing at `now`. Amounts in USD; for `reserved`, `consumed` is the cost of the hours
    paid so far and `amount` the cost of every hour of the term."""

    name: str
    kind: str
    vendor: str
    start: str
    end: str
    amount: float
    consumed: float
    elapsed: float  # share of the term gone, 0..1
    last_day: float  # consumed over the last 24 hours
    per_day_7d: float  # average per day over the last 7 days
    projected: float  # consumed at the end date at the 7-day rate (reserved: the whole term)
    shortfall: float  # committed but, at this rate, never used (spend); paid for idle hours (reserved)
    overrun: float  # used beyond the commitment at this rate (spend only)
    list_value: float  # what the usage drawn on it would have cost at list price
    hours_paid: int = 0
    hours_used: int = 0  # paid hours in which it served at least one token
    tokens: int = 0
    utilisation: float = 0.0  # hours_used / hours_paid
    effective_per_mtok: float | None = None  # consumed / million tokens served

    def bar(self, width: int = BAR_WIDTH) -> str:
        """`[#####|....]`: consumed share of the amount in #, the share of time elapsed at the |."""
        used = 0.0 if self.amount <= 0 else min(1.0, self.consumed / self.amount)
        cells = ["#" if i < math.floor(used * width + 0.5) else "." for i in range(width)]
        cells.insert(min(width, math.floor(self.elapsed * width + 0.5)), "|")
        return "[" + "".join(cells) + "]"

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["bar"] = self.bar()
        return data


def burn_down(store: LedgerStore, commitments: tuple, now: float) -> list[BurnDown]:
    found = []
    for commitment in commitments:
        starts, ends = window(commitment)
        if commitment.kind == "reserved":  # its figures are hours and tokens: no amortisation needed
            found.append(_reserved(store, commitment, starts, ends, now))
        else:
            found.append(_spend(store, commitment, starts, ends, now))
    return found


def _sums(store: LedgerStore, commitment: Any, starts: float, now: float, column: str) -> tuple:
    """Total, last 24 hours and last 7 days of `column`, list cost, and tokens drawn on a commitment."""
    row = store.rows(
        f"SELECT COALESCE(SUM({column}), 0), "
        f"COALESCE(SUM(CASE WHEN started_at >= ? THEN {column} ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN started_at >= ? THEN {column} ELSE 0 END), 0), "
        f"COALESCE(SUM(list_cost_usd), 0), COALESCE(SUM{TOKENS}, 0) "
        "FROM {t} WHERE commitment = ? AND attempt > 0 AND started_at >= ? AND started_at < ?",
        (now - DAY, now - 7 * DAY, commitment.name, starts, now))[0]
    return tuple(float(v) for v in row[:4]) + (int(row[4]),)


def _spend(store: LedgerStore, commitment: Any, starts: float, ends: float, now: float) -> BurnDown:
    consumed, last_day, last_week, listed, _ = _sums(store, commitment, starts, min(now, ends), "billed_cost_usd")
    per_day = last_week / min(7.0, max((min(now, ends) - starts) / DAY, 1 / 24))  # a young term: its own age
    projected = consumed + per_day * max(0.0, ends - now) / DAY
    gap = commitment.amount_usd - projected
    return BurnDown(commitment.name, commitment.kind, commitment.vendor, str(commitment.start), str(commitment.end),
                    commitment.amount_usd, consumed, _elapsed(starts, ends, now), last_day, per_day, projected,
                    max(gap, 0.0), max(-gap, 0.0), listed)


def _reserved(store: LedgerStore, commitment: Any, starts: float, ends: float, now: float) -> BurnDown:
    until = min(now, ends)
    hours_paid = max(0, math.ceil((until - starts) / HOUR))  # an hour begun is an hour paid
    hours_total = math.ceil((ends - starts) / HOUR)
    rate = commitment.cost_per_hour
    listed, tokens = _sums(store, commitment, starts, until, "billed_cost_usd")[3:]
    used = store.rows(
        f"SELECT COUNT(DISTINCT {store.hour_of()}) FROM {{t}} WHERE commitment = ? AND attempt > 0 "
        f"AND {TOKENS} > 0 AND started_at >= ? AND started_at < ?", (commitment.name, starts, until))[0][0]
    consumed = hours_paid * rate
    idle = (hours_paid - int(used)) * rate
    return BurnDown(commitment.name, commitment.kind, commitment.vendor, str(commitment.start),
                    str(commitment.end), hours_total * rate, consumed, _elapsed(starts, ends, now),
                    min(24, hours_paid) * rate, 24 * rate if hours_paid else 0.0, hours_total * rate, idle, 0.0,
                    listed, hours_paid, int(used), tokens, int(used) / hours_paid if hours_paid else 0.0,
                    consumed / (tokens / 1e6) if tokens else None)


def _elapsed(starts: float, ends: float, now: float) -> float:
    return min(1.0, max(0.0, (now - starts) / (ends - starts)))


def render(burns: list[BurnDown]) -> str:
    """The burn-down as plain text, one block per commitment."""
    if not burns:
        return "no commitments are configured"
    lines = []
    for b in burns:
        lines.append(f"{b.name} ({b.kind}, {b.vendor}, {b.start} to {b.end})")
        lines.append(f"  {b.bar()} {_pct(b.consumed / b.amount if b.amount else 0)} consumed, "
                     f"{_pct(b.elapsed)} of the term elapsed")
        lines.append(f"  consumed {_usd(b.consumed)} of {_usd(b.amount)}; last day {_usd(b.last_day)}, "
                     f"{_usd(b.per_day_7d)}/day over 7 days")
        if b.kind == "spend":
            verdict = (f"shortfall {_usd(b.shortfall)}" if b.shortfall else f"overrun {_usd(b.overrun)}")
            lines.append(f"  projected at the end {_usd(b.projected)}: {verdict}")
        else:
            per_mtok = _usd(b.effective_per_mtok) if b.effective_per_mtok is not None else "-"
            lines.append(f"  {b.hours_paid} hours paid, {b.hours_used} used ({_pct(b.utilisation)}); "
                         f"idle hours {_usd(b.shortfall)}")
            lines.append(f"  {b.tokens:,} tokens served: effective {per_mtok} per Mtok "
                         f"(at list price {_usd(b.list_value)})")
    return "\n".join(lines)


def _usd(value: float) -> str:
    return f"${cents(value):,}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"
