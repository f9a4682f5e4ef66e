"""The deployments and commitments the money tests price with (prices in USD per million tokens)."""

from __future__ import annotations

import datetime

from skyrelay.config.model import Commitment, Deployment, Price

UTC = datetime.timezone.utc
DAY = datetime.date


def deployment(name: str, kind: str = "openai", **price) -> Deployment:
    return Deployment(name, "chat", kind, model=f"model-{name}", price=Price(**price))


GPT = deployment("gpt", input_per_mtok=2.5, output_per_mtok=10, cached_input_per_mtok=1.25,
                 cache_write_per_mtok=3.125)
PLAIN = deployment("plain", input_per_mtok=2.5, output_per_mtok=10)  # no cache prices: cached input at full price
CLAUDE = deployment("claude", "bedrock", input_per_mtok=3, output_per_mtok=15, discount=0.2)
CHEAP = deployment("cheap", input_per_mtok=1)
PTU = deployment("ptu-east", "azure", input_per_mtok=2.5, output_per_mtok=10)

SPEND = Commitment("aws-commit", "spend", "aws", ("claude",), DAY(2026, 1, 1), DAY(2029, 1, 1), amount_usd=1000,
                   discount=0.1)
RESERVED = Commitment("azure-ptu", "reserved", "azure", ("ptu-east",), DAY(2026, 1, 1), DAY(2027, 1, 1),
                      cost_per_hour=180.0)
COMMITMENTS = (SPEND, RESERVED)
