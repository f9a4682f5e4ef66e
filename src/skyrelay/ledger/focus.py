"""The ledger as a FinOps FOCUS 1.2 cost-and-usage dataset (with 1.3's ServiceProviderName and HostProviderName),
written as CSV that finance tools load beside the clouds' own FOCUS exports.

Rows, one charge period (an hour, UTC) each:
- Usage: the attempts of one hour with the same vendor, deployment, region, team, key, model group and
  commitment, priced in Tokens (input + output). Under a reserved commitment BilledCost is 0, EffectiveCost the
  amortised share of the hour and CommitmentDiscountQuantity that share in Hours (CommitmentDiscountStatus
  "Used").
- Purchase: each hour of a reserved commitment: BilledCost the hourly price, EffectiveCost 0 (it is recognised in
  the usage it served).
- Usage "Unused": an hour of a reserved commitment that served no token: EffectiveCost the hourly price.
A spend commitment's discount is a negotiated rate in FOCUS terms (no purchase to amortise): it is in BilledCost and
ContractedCost, and the commitment is named in Tags.
NULL is an empty, unquoted CSV field; no value is ever an empty string.
"""

from __future__ import annotations

import csv
import datetime
import functools
from typing import IO, Any, Iterator

import orjson

from .commitments import amortise, window
from .money import DIGITS
from .store import HOUR, LedgerStore

COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
    "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "EffectiveCost", "HostProviderName", "InvoiceIssuerName",
    "ListCost", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "ResourceId", "ResourceName", "ServiceCategory", "ServiceName", "ServiceProviderName", "SkuId", "SkuPriceId",
    "Tags", "x_Requests", "x_InputTokens", "x_CachedInputTokens", "x_CacheWriteTokens", "x_OutputTokens",
)
SERVICE_CATEGORY = "AI and Machine Learning"
CURRENCY = "USD"
RESERVED_TYPE = "Reserved Capacity"
BILLING_ACCOUNT_TAG = "billing_account_id"  # a deployment tag naming the vendor account it is billed to

VENDOR_NAMES = {"azure": "Microsoft", "aws": "Amazon Web Services", "google": "Google Cloud",
                "anthropic": "Anthropic", "openai": "OpenAI"}
SERVICE_NAMES = {"azure": "Azure OpenAI", "bedrock": "Amazon Bedrock", "vertex": "Vertex AI",
                 "gemini": "Gemini API", "anthropic": "Claude API", "openai": "OpenAI API"}
# Who made the model, by a word in its id (Claude on Bedrock is Anthropic's model, hosted by AWS).
PUBLISHERS = (("claude", "Anthropic"), ("gemini", "Google"), ("gemma", "Google"), ("gpt", "OpenAI"),
              ("o1", "OpenAI"), ("o3", "OpenAI"), ("o4", "OpenAI"), ("embedding", "OpenAI"), ("llama", "Meta"),
              ("mistral", "Mistral AI"), ("titan", "Amazon"), ("nova", "Amazon"))

_GROUP = ("vendor", "deployment", "region", "team", "key_name", "model_group", "commitment")


def export(store: LedgerStore, config: Any, since: float, until: float, out: IO[str], now: float) -> int:
    """Write the FOCUS rows of [since, until) (whole hours: `since` rounds down, `until` up) to `out`; the number
    of rows written. Reserved hours are shown up to `now` (an hour that has not begun is not paid yet)."""
    since = since - since % HOUR
    until = until if until % HOUR == 0 else until - until % HOUR + HOUR
    amortise(store, config.commitments, since, until)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in rows(store, config, since, until, now):
        writer.writerow([_cell(row.get(name)) for name in COLUMNS])
        count += 1
    return count


def rows(store: LedgerStore, config: Any, since: float, until: float, now: float) -> Iterator[dict[str, Any]]:
    reserved = {c.name: c for c in config.commitments if c.kind == "reserved"}
    groups = list(_usage_groups(store, since, until))
    served: dict[tuple[str, int], int] = {}  # (reserved commitment, hour) -> tokens it served
    for group in groups:
        if group["commitment"] in reserved:
            key = (group["commitment"], group["hour"])
            served[key] = served.get(key, 0) + group["tokens"]
    for group in groups:
        commitment = reserved.get(group["commitment"])
        hour_tokens = served.get((group["commitment"], group["hour"]), 0) if commitment is not None else 0
        yield _usage_row(config, group, commitment, hour_tokens)
    for commitment in reserved.values():
        starts, ends = window(commitment)
        hour = max(since, starts)
        while hour < min(until, ends, now):
            yield _purchase_row(config, commitment, hour)
            if not served.get((commitment.name, int(hour // HOUR))):
                yield _unused_row(config, commitment, hour)
            hour += HOUR


def _usage_groups(store: LedgerStore, since: float, until: float) -> Iterator[dict[str, Any]]:
    columns = ", ".join(_GROUP)
    found = store.rows(
        f"SELECT {store.hour_of()}, {columns}, COUNT(DISTINCT request_id), SUM(input_tokens), SUM(cached_tokens), "
        "SUM(cache_write_tokens), SUM(output_tokens), SUM(list_cost_usd), SUM(billed_cost_usd), "
        "SUM(effective_cost_usd) FROM {t} WHERE attempt > 0 AND status <> 'open' AND started_at >= ? "
        f"AND started_at < ? GROUP BY 1, {columns} ORDER BY 1, {columns}", (since, until))
    for hour, *labels_and_sums in found:
        labels = {name: value if value != "" else None for name, value in zip(_GROUP, labels_and_sums)}
        requests, inputs, cached, writes, outputs, listed, billed, effective = labels_and_sums[len(_GROUP):]
        inputs, outputs = int(inputs or 0), int(outputs or 0)
        if not (inputs or outputs or listed or billed or effective):
            continue  # attempts that used nothing (refused, failed before any token) cost nothing
        yield {**labels, "hour": int(hour), "requests": int(requests), "input": inputs, "cached": int(cached or 0),
               "cache_write": int(writes or 0), "output": outputs, "tokens": inputs + outputs,
               "list": float(listed or 0), "billed": float(billed or 0), "effective": float(effective or 0)}


def _usage_row(config: Any, group: dict[str, Any], reserved: Any, hour_tokens: int) -> dict[str, Any]:
    """`hour_tokens`: what the reserved commitment served in the group's hour (its share of the hour is this
    group's tokens over those)."""
    deployment = config.deployment(group["deployment"]) if group["deployment"] else None
    vendor = group["vendor"] or (deployment.vendor if deployment is not None else "unknown")
    model = deployment.model if deployment is not None else group["deployment"] or "unknown"
    sku = f"{vendor}:{model}"
    start = group["hour"] * HOUR
    row = _common(vendor, start, _account(deployment, vendor))
    tags = {"team": group["team"], "key": group["key_name"], "model_group": group["model_group"],
            "deployment": group["deployment"], "commitment": group["commitment"]}
    row.update({
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based",
        "ChargeDescription": f"{group['tokens']} tokens of {model} on {group['deployment'] or vendor}"
                             + (f" for model group {group['model_group']}" if group["model_group"] else ""),
        "ListCost": group["list"], "BilledCost": group["billed"], "EffectiveCost": group["effective"],
        "ContractedCost": group["billed"],
        "PricingQuantity": group["tokens"], "PricingUnit": "Tokens",
        "ConsumedQuantity": group["tokens"], "ConsumedUnit": "Tokens",
        "PricingCategory": "Standard", "PublisherName": _publisher(model, vendor),
        "ServiceName": _service(deployment, vendor), "RegionId": group["region"],
        "ResourceId": group["deployment"], "ResourceName": group["deployment"],
        "SkuId": sku, "SkuPriceId": f"{sku}:{group['commitment'] or 'on-demand'}",
        "Tags": {k: v for k, v in tags.items() if v is not None},
        "x_Requests": group["requests"], "x_InputTokens": group["input"], "x_CachedInputTokens": group["cached"],
        "x_CacheWriteTokens": group["cache_write"], "x_OutputTokens": group["output"],
    })
    if reserved is not None:
        # What the usage costs under the negotiated rate, before the reserved capacity covered it.
        discount = deployment.price.discount if deployment is not None else 0.0
        row.update(_commitment_columns(reserved), CommitmentDiscountStatus="Used", PricingCategory="Committed",
                   ContractedCost=group["list"] * (1.0 - discount),
                   CommitmentDiscountQuantity=group["tokens"] / hour_tokens if hour_tokens else 0.0)
    return row


def _purchase_row(config: Any, commitment: Any, hour: float) -> dict[str, Any]:
    row = _reserved_common(config, commitment, hour)
    row.update({
        "ChargeCategory": "Purchase", "ChargeFrequency": "Recurring", "PricingCategory": "Standard",
        "ChargeDescription": f"1 hour of reserved capacity {commitment.name}",
        "ListCost": commitment.cost_per_hour, "ContractedCost": commitment.cost_per_hour,
        "BilledCost": commitment.cost_per_hour, "EffectiveCost": 0.0, "CommitmentDiscountQuantity": 1,
    })
    return row


def _unused_row(config: Any, commitment: Any, hour: float) -> dict[str, Any]:
    row = _reserved_common(config, commitment, hour)
    row.update({
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "PricingCategory": "Committed",
        "CommitmentDiscountStatus": "Unused",
        "ChargeDescription": f"unused hour of reserved capacity {commitment.name}",
        "ListCost": 0.0, "ContractedCost": 0.0, "BilledCost": 0.0, "EffectiveCost": commitment.cost_per_hour,
        "CommitmentDiscountQuantity": 1,
    })
    return row


def _reserved_common(config: Any, commitment: Any, hour: float) -> dict[str, Any]:
    first = config.deployment(commitment.deployments[0]) if commitment.deployments else None
    row = _common(commitment.vendor, hour, _account(first, commitment.vendor))
    sku = f"{commitment.vendor}:reserved:{commitment.name}"
    row.update(_commitment_columns(commitment))
    row.update({
        "PricingQuantity": 1, "PricingUnit": "Hours", "SkuId": sku, "SkuPriceId": sku,
        "PublisherName": _publisher(first.model if first is not None else "", commitment.vendor),
        "ServiceName": _service(first, commitment.vendor),
        "ResourceId": commitment.name, "ResourceName": commitment.name,
        "Tags": {"commitment": commitment.name},
    })
    return row


def _commitment_columns(commitment: Any) -> dict[str, Any]:
    """A reserved commitment is bought and consumed in hours of capacity: a used row consumes the share of its
    hour its tokens were of the hour's."""
    return {"CommitmentDiscountId": commitment.name, "CommitmentDiscountName": commitment.name,
            "CommitmentDiscountCategory": "Usage", "CommitmentDiscountType": RESERVED_TYPE,
            "CommitmentDiscountUnit": "Hours"}


def _common(vendor: str, start: float, account: str) -> dict[str, Any]:
    name = VENDOR_NAMES.get(vendor, vendor)
    period_start, period_end, charge_start, charge_end = _periods(start)
    return {
        "BillingAccountId": account, "BillingAccountName": account, "BillingCurrency": CURRENCY,
        "BillingPeriodStart": period_start, "BillingPeriodEnd": period_end,
        "ChargePeriodStart": charge_start, "ChargePeriodEnd": charge_end,
        "ProviderName": name, "ServiceProviderName": name, "HostProviderName": name, "InvoiceIssuerName": name,
        "ServiceCategory": SERVICE_CATEGORY,
    }


def _account(deployment: Any, vendor: str) -> str:
    """The vendor account a deployment is billed to: its `billing_account_id` tag, else the vendor's name."""
    tagged = deployment.tags.get(BILLING_ACCOUNT_TAG) if deployment is not None else None
    return str(tagged) if tagged not in (None, "") else vendor


def _service(deployment: Any, vendor: str) -> str:
    kind = deployment.kind if deployment is not None else None
    if kind == "openai" and vendor != "openai":  # an OpenAI-compatible server of someone else's (vLLM, ...)
        return f"{vendor} inference"
    return SERVICE_NAMES.get(kind or "", f"{vendor} inference")


def _publisher(model: str, vendor: str) -> str:
    lowered = model.lower()
    for word, publisher in PUBLISHERS:
        if word in lowered:
            return publisher
    return VENDOR_NAMES.get(vendor, vendor)


@functools.lru_cache(maxsize=4096)
def _periods(start: float) -> tuple[str, str, str, str]:
    """The billing period (the calendar month) and the charge period (the hour) of an hour's start."""
    hour = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    first = hour.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    return _stamp(first), _stamp(following), _stamp(hour), _stamp(hour + datetime.timedelta(hours=1))


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: Any) -> str | None:
    """A CSV field: None stays NULL (an empty unquoted field); numbers in plain decimal notation (no exponent, no
    symbol); Tags as a JSON object."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is float:
        text = f"{value + 0.0:.{DIGITS}f}".rstrip("0")  # + 0.0: never "-0"
        return text[:-1] if text.endswith(".") else text
    if kind is int:
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
