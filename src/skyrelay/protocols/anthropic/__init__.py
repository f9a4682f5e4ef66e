"""The Anthropic Messages wire format, inbound: request bodies -> canonical, canonical -> messages and events.

request.py parses (`parse_messages`, `parse_count_tokens`), response.py renders whole messages and errors,
stream.py renders chunk streams as Anthropic events, tokens.py estimates input tokens.
"""

from .request import parse_count_tokens, parse_messages, read_count_tokens, read_messages
from .response import (
    error_body, error_type, new_request_id, render_error, render_message, render_stream_error, render_usage,
    stop_reason, thinking_block, tool_input,
)
from .stream import StreamRenderer, ThinkingStreamRenderer
from .tokens import estimate_input_tokens

__all__ = [
    "StreamRenderer", "ThinkingStreamRenderer", "error_body", "error_type", "estimate_input_tokens", "new_request_id", "parse_count_tokens",
    "parse_messages", "read_count_tokens", "read_messages", "render_error", "render_message", "render_stream_error", "render_usage", "stop_reason",
    "thinking_block", "tool_input",
]
