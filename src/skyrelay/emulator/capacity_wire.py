"""Each cloud's own capacity signals: the rate-limit headers on its answers and its throttling errors.

    cloud       headers on every answer (quota configured)          quota / PTU refusal           queue full
    openai      x-ratelimit-{limit,remaining,reset}-{requests,tokens}  429 type requests|tokens     503 overloaded
    azure       x-ratelimit-remaining-{requests,tokens}              429 retry-after(-ms)          429 retry-after(-ms)
    anthropic   anthropic-ratelimit-{requests,tokens,input-tokens,   429 rate_limit_error          529 overloaded_error
                output-tokens}-{limit,remaining,reset}               + retry-after
    bedrock     none                                                 429 ThrottlingException       503 ServiceUnavailable
    gemini      none                                                 429 RESOURCE_EXHAUSTED        503 UNAVAILABLE
    vertex      none                                                 429 RESOURCE_EXHAUSTED        429 RESOURCE_EXHAUSTED
OpenAI's resets are durations until the bucket is full ("1s", "6m0s"); Anthropic's are RFC 3339 times.
"""

from __future__ import annotations

import math
import time
from typing import Any

from skyrelay.net.server import Response

from .capacity import CapacityRefused
from .protocols import anthropic, azure, bedrock_wire, gemini_errors, openai_wire

QuotaSnapshot = list[tuple[str, int, int, float]]  # (limit, limit value, remaining, seconds until full)
_OPENAI_UNITS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def success_headers(protocol: str, quota: QuotaSnapshot) -> list[tuple[str, str]]:
    if protocol == "openai":
        return _openai_headers(quota)
    if protocol == "azure":
        return [(f"x-ratelimit-remaining-{name}", str(remaining)) for name, _, remaining, _ in quota
                if name in ("requests", "tokens")]
    if protocol == "anthropic":
        return _anthropic_headers(quota)
    return []  # Bedrock and Google report no remaining quota


def refusal(protocol: Any, name: str, refused: CapacityRefused) -> Response:
    """The cloud's answer to a refused request (`protocol`: the cloud's protocol object, `name` its name)."""
    render = _REFUSALS.get(name, _gemini)
    response = render(protocol, refused)
    extra = success_headers(name, refused.quota)  # OpenAI and Anthropic send their quota on a 429 too
    if extra:
        response.headers = merge_headers(response.headers, extra)
    return response


def merge_headers(headers: list[tuple[str, str]], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`extra` replaces headers of the same names (Anthropic's fixed placeholders, for one)."""
    drop = {k for k, _ in extra}
    return [h for h in headers if h[0] not in drop] + extra


def _openai(protocol: Any, refused: CapacityRefused) -> Response:
    if refused.reason == "overloaded":
        return protocol.error_response(503)
    kind = "tokens" if refused.reason != "requests" else "requests"
    limit = dict((n, lim) for n, lim, _, _ in refused.quota).get(refused.reason)
    if refused.reason == "provisioned" or limit is None:
        message = f"Rate limit reached for {refused.model}. Please try again in {_duration(refused.retry_after)}."
    else:
        message = (f"Rate limit reached for {refused.model} on {_OPENAI_UNITS.get(refused.reason, refused.reason)}: "
                   f"Limit {limit}, Requested {refused.requested}. Please try again in "
                   f"{_duration(refused.retry_after)}. Visit https://platform.openai.com/account/rate-limits to learn "
                   f"more.")
    return protocol.render_error(openai_wire.ApiError(429, message, kind, None, "rate_limit_exceeded"))


def _azure(protocol: Any, refused: CapacityRefused) -> Response:
    wait = refused.retry_after if refused.retry_after is not None else 1.0
    seconds = max(math.ceil(wait), 1)
    if refused.reason == "requests":
        what = "call rate limit"
    elif refused.reason == "overloaded":
        what = "the capacity available to this deployment"
    elif refused.reason == "provisioned":
        what = "the provisioned throughput of this deployment"
    else:
        what = "token rate limit"
    message = (f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded {what} of "
               f"your current pricing tier. Please retry after {seconds} seconds. Please go here: "
               f"https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.")
    response = protocol.render(azure.AzureError(429, "429", message))
    response.headers += [("retry-after", str(seconds)), ("retry-after-ms", str(max(math.ceil(wait * 1000), 1)))]
    return response


def _anthropic(protocol: Any, refused: CapacityRefused) -> Response:
    if refused.reason == "overloaded":
        return protocol.render_error(anthropic.status_error(529))
    noun = {"requests": "requests", "input_tokens": "input tokens", "output_tokens": "output tokens"}.get(
        refused.reason, "tokens")
    message = (f"This request would exceed the rate limit for your organization of {noun} per minute. For details, "
               f"refer to: https://docs.claude.com/en/api/rate-limits.")
    return protocol.render_error(anthropic.AnthropicError(429, "rate_limit_error", message),
                                 refused.retry_after if refused.retry_after is not None else 1.0)


def _bedrock(protocol: Any, refused: CapacityRefused) -> Response:
    if refused.reason == "overloaded":
        return bedrock_wire.error_response(bedrock_wire.status_error(503))
    what = "requests" if refused.reason == "requests" else "tokens"
    error = bedrock_wire.BedrockError(429, "ThrottlingException", f"Too many {what}, please wait before trying again.")
    return bedrock_wire.error_response(error)  # Bedrock sends no Retry-After


def _gemini(protocol: Any, refused: CapacityRefused) -> Response:
    status = 503 if refused.reason == "overloaded" and not protocol.vertex else 429
    retry = refused.retry_after if status == 429 else None
    return gemini_errors.render(gemini_errors.status_error(status, None, retry, protocol.vertex))


_REFUSALS = {"openai": _openai, "azure": _azure, "anthropic": _anthropic, "bedrock": _bedrock}


def _openai_headers(quota: QuotaSnapshot) -> list[tuple[str, str]]:
    out = []
    for name, limit, remaining, reset in quota:
        if name in ("requests", "tokens"):
            out += [(f"x-ratelimit-limit-{name}", str(limit)), (f"x-ratelimit-remaining-{name}", str(remaining)),
                    (f"x-ratelimit-reset-{name}", _duration(reset))]
    return out


def _anthropic_headers(quota: QuotaSnapshot) -> list[tuple[str, str]]:
    now = time.time()
    out = []
    for name, limit, remaining, reset in quota:
        prefix = "anthropic-ratelimit-" + name.replace("_", "-")
        out += [(f"{prefix}-limit", str(limit)), (f"{prefix}-remaining", str(remaining)),
                (f"{prefix}-reset", _rfc3339(now + reset))]
    return out


def _duration(seconds: float | None) -> str:
    """OpenAI's Go-style durations: "120ms", "1s", "17.5s", "6m0s"."""
    if seconds is None or seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 1)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(when)))
