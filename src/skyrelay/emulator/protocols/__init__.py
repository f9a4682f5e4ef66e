"""Wire protocols the emulator speaks, by the name used in `protocol:` of a cloud's configuration.

Each protocol is a class following `base.WireProtocol`; register a new one by adding it to PROTOCOLS.
"""

from __future__ import annotations

from .anthropic import AnthropicProtocol
from .azure import AzureProtocol
from .base import Call, CallContext, WireProtocol
from .bedrock import BedrockProtocol
from .gemini import GeminiProtocol, VertexProtocol
from .openai import OpenAIProtocol
from .vertex_anthropic import VertexAnthropicProtocol

PROTOCOLS: dict[str, type] = {
    "openai": OpenAIProtocol,
    "azure": AzureProtocol,
    "bedrock": BedrockProtocol,
    "anthropic": AnthropicProtocol,
    "gemini": GeminiProtocol,
    "vertex": VertexProtocol,
    "vertex_anthropic": VertexAnthropicProtocol,
}

__all__ = ["PROTOCOLS", "Call", "CallContext", "WireProtocol"]
