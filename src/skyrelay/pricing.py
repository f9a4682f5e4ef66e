"""What a request costs, from a deployment's `price` (US dollars per million tokens). One module for every use:
budgets reserve and settle with it (and the ledger prices with it)."""

from __future__ import annotations

import math

MICRO = 1_000_000  # budgets count micro-dollars: integers add up exactly, in memory and in Redis


def cost_micro_usd(price, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> int:
    """The cost in micro-dollars, rounded up. $/Mtok is µ$/token, so no scaling is needed. `cached_tokens` are
    part of `input_tokens`, priced at `cached_input_per_mtok` when the deployment sets one."""
    cached_price = price.cached_input_per_mtok
    if cached_price is None or not cached_tokens:
        value = input_tokens * price.input_per_mtok
    else:
        value = (input_tokens - cached_tokens) * price.input_per_mtok + cached_tokens * cached_price
    return math.ceil(value + output_tokens * price.output_per_mtok)


def dearest(deployments) -> tuple[float, float]:
    """The highest input and output prices among some deployments: what an estimate reserves before it is known
    which of them (failover included) will serve."""
    return (max((d.price.input_per_mtok for d in deployments), default=0.0),
            max((d.price.output_per_mtok for d in deployments), default=0.0))
