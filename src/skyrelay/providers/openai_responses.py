"""A Responses API request to a deployment that speaks it (OpenAI, Azure OpenAI): forwarded, not rebuilt.

The client's body goes out with only `model` swapped (and `stream` set as the call needs). A `previous_response_id`
goes as is to the deployment that produced that response; any other deployment never saw it, so it gets the
stored conversation in front of the input instead. The answer comes back as the cloud sent it
(ChatResponse.responses, one ChatChunk.responses per stream event), while what the gateway itself needs (usage with
cached tokens, where output starts, how the stream ends, the finished Response for the store) is read on the way.
"""

from __future__ import annotations

import time
from typing import Any

from .. import errors
from ..canonical import ChatChunk, ChatResponse, Choice, ResponsesNative, ToolCallDelta, Usage
from .base import as_int, load_json

_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_FINAL = frozenset({"response.completed", "response.incomplete"})


def native_body(native: ResponsesNative, model: str, stream: bool, deployment: str) -> dict[str, Any]:
    """The client's body for this deployment (a shallow copy: a retry elsewhere starts from the client's own)."""
    body = dict(native.body)
    body["model"] = model
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    if native.history is not None and native.previous_deployment != deployment:
        del body["previous_response_id"]  # that cloud never saw it: it gets the conversation itself
        body["input"] = native.full_input()
    return body


def parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details") or {}
    return Usage(input_tokens=as_int(usage.get("input_tokens")), output_tokens=as_int(usage.get("output_tokens")),
                 cached_tokens=as_int(details.get("cached_tokens")))


def _finish_reason(response: dict[str, Any]) -> str:
    if any(isinstance(item, dict) and item.get("type") == "function_call" for item in response.get("output") or ()):
        return "tool_calls"
    details = response.get("incomplete_details")
    return _INCOMPLETE.get(details.get("reason"), "stop") if isinstance(details, dict) else "stop"


def whole_response(raw: bytes, data: Any, deployment: str) -> ChatResponse:
    """The cloud's Response, to forward as is; its usage and finish read for the gateway."""
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise errors.UpstreamProtocolError(f"deployment '{deployment}' answered no Response", deployment=deployment)
    return ChatResponse(id=str(data.get("id", "")), model=str(data.get("model", "")), created=int(time.time()),
                        choices=[Choice(finish_reason=_finish_reason(data))], usage=parse_usage(data.get("usage")),
                        responses=raw, responses_data=data)


# The Responses API's error codes that are the cloud's failure; every other code it documents (invalid_prompt,
# invalid_image, image_content_policy_violation, failed_to_download_image, ...) is about the request.
_CLOUD_FAILURES = frozenset({"server_error", "vector_store_timeout"})

class ResponsesEvents:
    """The Responses API's stream events, each chunk carrying the SSE bytes of the events it stands for.

    The events before the first output (response.created, response.in_progress, the first item and part added)
    ride with the first output event, as one chunk: until then nothing has reached the client, so a cloud that
    fails there is failed over invisibly. From the first output on, one chunk per event."""

    __slots__ = ("deployment", "done", "pending")

    def __init__(self, deployment: str):
        self.deployment = deployment
        self.done = False
        self.pending: bytes | None = b""  # None once output has begun

    def decode(self, event: str | None, payload: bytes) -> tuple[ChatChunk, ...]:
        data = load_json(payload, self.deployment, "sent a stream event")
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str):
            raise errors.UpstreamProtocolError(f"deployment '{self.deployment}' sent an event without a type",
                                               deployment=self.deployment)
        if kind in ("error", "response.failed"):
            raise self._failure(data)
        raw = b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"
        if self.pending is not None:
            if not (kind.endswith((".delta", ".output_item.done")) or kind in _FINAL):
                self.pending += raw
                return ()
            raw, self.pending = self.pending + raw, None
        chunk = ChatChunk(id="", model="", created=0, responses=raw)
        if kind.endswith(".delta"):  # output has begun: text, arguments or reasoning (no longer a preamble)
            delta = data.get("delta")
            if kind == "response.output_text.delta":
                chunk.content = delta if isinstance(delta, str) else ""
            elif kind == "response.function_call_arguments.delta":
                chunk.tool_calls = [ToolCallDelta(index=as_int(data.get("output_index")),
                                                  arguments=delta if isinstance(delta, str) else "")]
            else:
                chunk.reasoning = delta if isinstance(delta, str) and delta else " "
        elif kind == "response.output_item.done":
            chunk.reasoning = " "  # an item that streamed no delta (a reasoning item without summary): output all the same
        elif kind in _FINAL:
            response = data.get("response")
            if isinstance(response, dict):
                chunk.usage = parse_usage(response.get("usage"))
                chunk.finish_reason = _finish_reason(response)
                chunk.responses_data = response
            self.done = True
        return (chunk,)

    def _failure(self, data: dict[str, Any]) -> errors.UpstreamError:
        err = data.get("error") if data.get("type") == "error" else (data.get("response") or {}).get("error")
        if not isinstance(err, dict):
            err = data if data.get("type") == "error" else {}
        message = err.get("message") or "the response failed"
        detail = f"deployment '{self.deployment}' failed mid-stream: {message}"
        code = err.get("code")
        if code == "rate_limit_exceeded":
            return errors.UpstreamRateLimited(detail, deployment=self.deployment)
        if isinstance(code, str) and code not in _CLOUD_FAILURES:  # invalid_prompt, invalid_image, ...: the request's
            return errors.UpstreamClientError(str(message), status=400, code=code, deployment=self.deployment)
        return errors.UpstreamUnavailable(detail, deployment=self.deployment)

    def finish(self) -> tuple[ChatChunk, ...]:
        if not self.done:
            raise errors.UpstreamProtocolError(
                f"deployment '{self.deployment}' ended the stream before response.completed",
                deployment=self.deployment)
        return ()
