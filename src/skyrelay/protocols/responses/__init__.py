"""The OpenAI Responses API, inbound: request -> canonical (request.py), canonical -> Response (response.py) and
canonical chunks -> Responses SSE events (stream.py)."""

from .request import parse_responses
from .response import render_error, render_response
from .stream import render_stream

__all__ = ["parse_responses", "render_error", "render_response", "render_stream"]
