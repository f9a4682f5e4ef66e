"""What a request costs, from a deployment's `price` (US dollars per million tokens). One module for every use:
budgets reserve and settle with it (and the ledger prices with it)."""

from __future__ import annotations

import math

MICRO = 1_000_000  # budgets count micro-dollars: integers add up exactly, in memory and in Redis


def list_cost_micro_usd(price, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
                        cache_write_tokens: int = 0) -> float:
    """The list price of a usage in micro-dollars, unrounded. $/Mtok is µ$/token, so no scaling is needed.
    `cached_tokens` (cache reads) and `cache_write_tokens` are parts of `input_tokens` (canonical Usage counts them
    inside it), priced at `cached_input_per_mtok` / `cache_write_per_mtok` when the deployment sets them."""
    full = input_tokens
    value = 0.0
    if cached_tokens and price.cached_input_per_mtok is not None:
        full -= cached_tokens
        value += cached_tokens * price.cached_input_per_mtok
    if cache_write_tokens and price.cache_write_per_mtok is not None:
        full -= cache_write_tokens
        value += cache_write_tokens * price.cache_write_per_mtok
    return value + full * price.input_per_mtok + output_tokens * price.output_per_mtok


def billed_micro_usd(price, list_micro: float) -> float:
    """What the vendor bills for a list cost: the deployment's contracted `discount` off list."""
    return list_micro * (1.0 - price.discount)


def cost_micro_usd(price, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
                   cache_write_tokens: int = 0) -> int:
    """The billed cost in whole micro-dollars, rounded up: what budgets reserve and settle (integers add up exactly,
    in memory and in Redis)."""
    if cached_tokens or cache_write_tokens:
        listed = list_cost_micro_usd(price, input_tokens, output_tokens, cached_tokens, cache_write_tokens)
    else:  # the usual usage, without the call (every governed request settles through here)
        listed = input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok
    return math.ceil((billed_micro_usd(price, listed) if price.discount else listed) - 1e-9)


def dearest(deployments) -> tuple[float, float]:
    """The highest input and output prices among some deployments: what an estimate reserves before it is known
    which of them (failover included) will serve."""
    return (max((d.price.input_per_mtok for d in deployments), default=0.0),
            max((d.price.output_per_mtok for d in deployments), default=0.0))
