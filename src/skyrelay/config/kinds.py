"""What each deployment kind needs and allows: endpoints, kind-specific options, credential rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import fields
from .fields import Context, child

KINDS = ("openai", "azure", "bedrock", "anthropic", "gemini", "vertex", "vertex_anthropic")

# Kinds whose endpoint the provider derives (from the region, or the cloud's one global host) when base_url is absent.
DERIVED_ENDPOINT = frozenset({"anthropic", "bedrock", "gemini", "vertex", "vertex_anthropic"})

BASE_URL_HINTS = {
    "openai": "use http://host:port/v1, e.g. https://api.openai.com/v1",
    "azure": "use https://<resource>.openai.azure.com",
    "anthropic": "use https://api.anthropic.com",
    "bedrock": "use https://bedrock-runtime.<region>.amazonaws.com, or remove it to derive it from region",
    "gemini": "use https://generativelanguage.googleapis.com, or remove it",
    "vertex": "use https://<location>-aiplatform.googleapis.com, or remove it to derive it from location",
    "vertex_anthropic": "use https://<location>-aiplatform.googleapis.com, or remove it to derive it from location",
}

_VERTEX = ("vertex", "vertex_anthropic")  # Vertex AI's kinds: Gemini, and Claude on Vertex
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")  # it becomes part of a host name


@dataclass(frozen=True, slots=True)
class Option:
    """A key only some kinds accept; stored in Deployment.options."""

    kinds: tuple[str, ...]
    secret: bool = False
    default: str | None = None
    integer: bool = False  # a positive integer rather than a string
    boolean: bool = False  # true / false rather than a string
    choices: tuple[str, ...] = ()  # the only values allowed, when set


RESPONSES_MODES = ("native", "translate")

OPTIONS: dict[str, Option] = {
    "api_version": Option(("azure",), default="2024-10-21"),
    "azure_ad_token": Option(("azure",), secret=True),
    "azure_ad_token_file": Option(("azure",)),
    "aws_access_key_id": Option(("bedrock",), secret=True),
    "aws_secret_access_key": Option(("bedrock",), secret=True),
    "aws_session_token": Option(("bedrock",), secret=True),
    "aws_profile": Option(("bedrock",)),
    "anthropic_version": Option(("anthropic",), default="2023-06-01"),
    # Anthropic requires max_tokens; the default (4096) for OpenAI clients' requests that set none
    "default_max_tokens": Option(("anthropic", "vertex_anthropic"), integer=True),
    # false for OpenAI-compatible servers that refuse `stream_options`: streams then carry no usage to record
    "stream_usage": Option(("openai",), boolean=True),
    # How /v1/responses reaches the deployment: forwarded to its own Responses API, or translated to chat completions
    # (for OpenAI-compatible servers without /v1/responses)
    "responses": Option(("openai", "azure"), default="native", choices=RESPONSES_MODES),
    # An OpenAI-compatible server that shows its reasoning (vLLM, SGLang with a reasoning parser): a Responses
    # request's `reasoning.summary` is then honoured (the thoughts as the summary), not named as dropped
    "shows_reasoning": Option(("openai",), boolean=True),
    "project": Option(_VERTEX),
    "location": Option(_VERTEX),
    "credentials_file": Option(_VERTEX),
}


def read_options(ctx: Context, raw: Mapping, path: str, kind: str | None, region: str | None) -> dict[str, Any]:
    """The kind-specific keys of one deployment, with their defaults, checked against its kind."""
    options: dict[str, Any] = {}
    for key, option in OPTIONS.items():
        if key in raw and kind is not None and kind not in option.kinds:
            allowed = ("kind " if len(option.kinds) == 1 else "kinds ") + ", ".join(option.kinds)
            ctx.add(child(path, key), f"only allowed for {allowed}, but this deployment is kind {kind}",
                    "remove it, or change kind")
            continue
        if option.secret:
            value = fields.secret(ctx, raw, path, key)
        elif option.integer:
            value = fields.number(ctx, raw, path, key, integer=True, minimum=1)
        elif option.boolean:
            value = raw.get(key)
            if value is not None and not isinstance(value, bool):
                ctx.add(child(path, key), f"expected true or false, got {ctx.show(child(path, key), value)}")
                value = None
        else:
            value = fields.text(ctx, raw, path, key, hint=_quote_hint(key))
            if value is not None and option.choices and value not in option.choices:
                ctx.add(child(path, key), f"expected one of {', '.join(option.choices)}, got "
                        f"{ctx.show(child(path, key), value)}")
                value = None
        if value is None and kind in option.kinds:
            value = option.default
        if value is not None:
            options[key] = value
    if kind is not None:
        _RULES.get(kind, _no_rules)(ctx, raw, path, options, region)
    return options


def _no_rules(*_: object) -> None:
    pass


def _quote_hint(key: str) -> str | None:
    return 'quote dates: "2024-10-21"' if key.endswith("_version") else None


def _present(raw: Mapping, *keys: str) -> list[str]:
    return [k for k in keys if raw.get(k) is not None]


def _azure(ctx: Context, raw: Mapping, path: str, options: dict, region: str | None) -> None:
    credentials = _present(raw, "api_key", "azure_ad_token", "azure_ad_token_file")
    if len(credentials) > 1:
        ctx.add(child(path, credentials[1]), f"conflicts with {credentials[0]}: give one Azure credential",
                "api_key (api-key header), azure_ad_token or azure_ad_token_file (bearer token)")


def _bedrock(ctx: Context, raw: Mapping, path: str, options: dict, region: str | None) -> None:
    if raw.get("region") is None:
        ctx.add(child(path, "region"), "required for kind bedrock (requests are signed for a region)",
                "e.g. region: us-east-1")
    keys = _present(raw, "aws_access_key_id", "aws_secret_access_key")
    if len(keys) == 1:
        other = "aws_secret_access_key" if keys[0] == "aws_access_key_id" else "aws_access_key_id"
        ctx.add(child(path, other), f"required together with {keys[0]}")
    if raw.get("aws_session_token") is not None and not keys:
        ctx.add(child(path, "aws_session_token"), "needs aws_access_key_id and aws_secret_access_key")
    if keys and raw.get("aws_profile") is not None:
        ctx.add(child(path, "aws_profile"), "conflicts with explicit AWS keys: give one or the other")


def _vertex(ctx: Context, raw: Mapping, path: str, options: dict, region: str | None) -> None:
    if raw.get("project") is None:
        ctx.add(child(path, "project"), f"required for kind {raw.get('kind')}", "the Google Cloud project id")
    if "location" not in options:  # a bad region is reported once, by check_region
        options["location"] = region or "us-central1"
        return
    where = child(path, "location")
    if not _REGION.match(options["location"]):
        ctx.add(where, f"not a Google Cloud location: {ctx.show(where, options['location'])}", "e.g. us-central1")


_RULES = {"azure": _azure, "bedrock": _bedrock, "vertex": _vertex, "vertex_anthropic": _vertex}


def check_region(ctx: Context, path: str, kind: str | None, region: str | None) -> None:
    """Regions of kinds with derived endpoints become host names: keep them to letters, digits and dashes."""
    if region is not None and kind in DERIVED_ENDPOINT and not _REGION.match(region):
        ctx.add(child(path, "region"), f"not a region name: {ctx.show(child(path, 'region'), region)}",
                "e.g. us-east-1 (lower case letters, digits and dashes)")
