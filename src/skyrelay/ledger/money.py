"""Usage to money: the one place a ledger record's list, billed and effective costs are computed."""

from __future__ import annotations

import datetime
from typing import Any

from ..pricing import billed_micro_usd, list_cost_micro_usd


def record_costs(deployment: Any, usage: Any, when: datetime.datetime,
                 commitments: tuple = ()) -> tuple[float, float, float, str | None]:
    """(list_usd, billed_usd, effective_usd, commitment name) of `usage` served by `deployment` at `when`.
    Commitments are not applied yet: billed is the deployment's discount off list, effective equals billed."""
    price = deployment.price
    listed = list_cost_micro_usd(price, usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                                 usage.cache_write_tokens)
    billed = billed_micro_usd(price, listed)
    return listed / 1e6, billed / 1e6, billed / 1e6, None
