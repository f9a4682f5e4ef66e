"""Providers: canonical <-> each cloud's wire protocol, one module per cloud."""

from __future__ import annotations

from typing import Any

from .anthropic import AnthropicProvider
from .anthropic.vertex import VertexAnthropicProvider
from .azure import AzureOpenAIProvider
from .base import Provider
from .bedrock import BedrockProvider
from .gemini import GeminiProvider, VertexProvider
from .openai import OpenAIProvider

# kind -> provider class; clouds register here as they land.
PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "vertex": VertexProvider,
    "bedrock": BedrockProvider,
    "vertex_anthropic": VertexAnthropicProvider,
}


def build_provider(deployment: Any) -> Provider:
    try:
        cls = PROVIDERS[deployment.kind]
    except KeyError:
        raise ValueError(
            f"deployment '{deployment.name}': provider kind '{deployment.kind}' is not available in this build; "
            f"available: {', '.join(PROVIDERS)}"
        ) from None
    return cls(deployment)
