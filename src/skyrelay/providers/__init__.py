"""Providers: canonical <-> each cloud's wire protocol, one module per cloud."""

from __future__ import annotations

import importlib
from typing import Any

from .anthropic import AnthropicProvider
from .anthropic.vertex import VertexAnthropicProvider
from .azure import AzureOpenAIProvider
from .base import Provider
from .gemini import GeminiProvider, VertexProvider
from .openai import OpenAIProvider

# kind -> provider class; clouds register here as they land.
PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "vertex": VertexProvider,
    "vertex_anthropic": VertexAnthropicProvider,
}

# Imported when a deployment of the kind is built: a gateway without Bedrock pays none of its start-up (a
# deployment that resolves AWS credentials through botocore's default chain or a profile imports botocore then).
LAZY_PROVIDERS: dict[str, tuple[str, str]] = {"bedrock": ("skyrelay.providers.bedrock", "BedrockProvider")}


def provider_class(kind: str) -> type[Provider] | None:
    cls = PROVIDERS.get(kind)
    if cls is None and kind in LAZY_PROVIDERS:
        module, name = LAZY_PROVIDERS[kind]
        cls = PROVIDERS[kind] = getattr(importlib.import_module(module), name)
    return cls


def build_provider(deployment: Any) -> Provider:
    cls = provider_class(deployment.kind)
    if cls is None:
        available = ", ".join(sorted({*PROVIDERS, *LAZY_PROVIDERS}))
        raise ValueError(
            f"deployment '{deployment.name}': provider kind '{deployment.kind}' is not available in this build; "
            f"available: {available}"
        )
    return cls(deployment)
