"""The OpenAI Responses API, inbound: request -> canonical (request.py), canonical -> Response (response.py) and
canonical chunks -> Responses SSE events (stream.py)."""

from .request import parse_responses, read_responses
from .response import render_error, render_response, response_object
from .stream import render_any_stream, render_stream

__all__ = ["parse_responses", "read_responses", "render_any_stream", "render_error", "render_response",
           "render_stream", "response_object"]
