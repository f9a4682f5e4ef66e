"""Bedrock Runtime's wire shapes: errors, the Converse body, the ConverseStream events.

Shapes follow the public Bedrock Runtime API reference (Converse, ConverseStream, TokenUsage, ConverseMetrics,
the error shapes). Errors are AWS REST-JSON errors: the type in `x-amzn-errortype` (with the coral namespace
suffix real AWS adds; clients keep what precedes the colon), a request id in `x-amzn-requestid`, and a JSON body
{"message": ...} (the front door's auth errors say "Message").
"""

from __future__ import annotations

import hashlib
import random
import string
import uuid
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, AsyncIterator

import orjson

from skyrelay.net.server import Response

from ..generate import ChoiceOut, Generation
from ..timing import Pacer
from . import bedrock_eventstream as es

if TYPE_CHECKING:
    from .bedrock_reasoning import Reasoning

JSON_HEADERS = [("content-type", "application/json")]
SERVICE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
FRONT_DOOR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_ALNUM = string.ascii_letters + string.digits
_PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits

# status -> (error type, Bedrock's wording), for injected faults that give no message of their own
STATUS_ERRORS = {
    400: ("ValidationException", "The request is invalid."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    413: ("ValidationException", "Input is too long for requested model."),
    424: ("ModelErrorException", "The model returned an error. Try your request again."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The system encountered an unexpected error during processing. "
                                     "Try your request again."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# ConverseStream's modelled in-stream errors (the member names of its event union)
STREAM_EXCEPTIONS = {
    "ThrottlingException": "throttlingException", "InternalServerException": "internalServerException",
    "ServiceUnavailableException": "serviceUnavailableException", "ValidationException": "validationException",
    "ModelErrorException": "modelStreamErrorException",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "content_filtered"}


class BedrockError(Exception):
    """One AWS error answer. `front_door`: raised by AWS's auth layer rather than by Bedrock itself."""

    def __init__(self, status: int, type: str, message: str, front_door: bool = False):
        super().__init__(message)
        self.status, self.type, self.message, self.front_door = status, type, message, front_door


def status_error(status: int, message: str | None = None) -> BedrockError:
    if status in STATUS_ERRORS:
        type_, default = STATUS_ERRORS[status]
    elif status >= 500:
        type_, default = STATUS_ERRORS[500]
    else:
        type_, default = STATUS_ERRORS[400]
    return BedrockError(status, type_, message or default)


def validation(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def request_id(key: int | None = None) -> str:
    return str(uuid.UUID(int=key & (2**128 - 1))) if key is not None else str(uuid.uuid4())


def base_headers(req_id: str) -> list[tuple[str, str]]:
    return [("x-amzn-requestid", req_id), ("date", formatdate(usegmt=True))]


def error_response(error: BedrockError, extra: list[tuple[str, str]] | None = None) -> Response:
    namespace = FRONT_DOOR_NAMESPACE if error.front_door else SERVICE_NAMESPACE
    body = {"Message" if error.front_door else "message": error.message}
    headers = JSON_HEADERS + base_headers(request_id()) + [("x-amzn-errortype", f"{error.type}:{namespace}")]
    return Response(error.status, orjson.dumps(body), headers + (extra or []))


def tool_use_id(key: str) -> str:
    """`tooluse_` + 22 letters and digits, as Bedrock's ids look; derived from the generator's hex key."""
    number = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_ALNUM[digit])
    return "tooluse_" + "".join(chars)


def stop_reason(choice: ChoiceOut) -> str:
    if choice.stop_sequence is not None:
        return "stop_sequence"
    return STOP_REASONS.get(choice.finish, "end_turn")


def usage(gen: Generation, cache: dict[str, int] | None = None, thinking: int = 0) -> dict[str, int]:
    """TokenUsage; with a prefix-cache hit, `inputTokens` counts only the uncached rest and the cached part
    is `cacheReadInputTokens`. `cache` (cachePoint caching, bedrock_cache.py) overrides the automatic prefix
    cache and adds the tokens written, `cacheWriteInputTokens`. `thinking`: reasoning tokens, which Bedrock
    counts inside `outputTokens` (TokenUsage has no field of their own)."""
    read = cache["read"] if cache is not None else gen.cached_tokens
    written = cache["write"] if cache is not None else 0
    output = gen.completion_tokens + thinking
    out = {"inputTokens": max(0, gen.prompt_tokens - read - written), "outputTokens": output,
           "totalTokens": gen.prompt_tokens + output}
    if read:
        out["cacheReadInputTokens"] = read
    if written:
        out["cacheWriteInputTokens"] = written
    return out


def converse_body(gen: Generation, latency_ms: int, cache: dict[str, int] | None = None,
                  reasoning: Reasoning | None = None) -> dict[str, Any]:
    choice = gen.choices[0]
    content: list[dict[str, Any]] = [reasoning.block()] if reasoning is not None else []
    if choice.tokens or not choice.tool_calls:
        content.append({"text": choice.text})
    for call in choice.tool_calls:
        content.append({"toolUse": {"toolUseId": tool_use_id(call.key), "name": call.name,
                                    "input": _tool_input(call.arguments)}})
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop_reason(choice),
            "usage": usage(gen, cache, reasoning.tokens if reasoning else 0), "metrics": {"latencyMs": latency_ms}}


def _tool_input(arguments: str) -> Any:
    """The model's arguments as a JSON document; a call cut short by maxTokens has none that parse."""
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}


async def converse_stream(gen: Generation, pacer: Pacer, rng: random.Random, padding: bool,
                          started: float, clock, cache: dict[str, int] | None = None,
                          reasoning: Reasoning | None = None) -> AsyncIterator[bytes]:
    """ConverseStream's events, one event-stream message per yield, paced like a model."""

    def frame(event_type: str, body: dict[str, Any]) -> bytes:
        if padding:  # Bedrock pads events so their sizes do not reveal the tokens
            body["p"] = _PADDING[: rng.randint(1, len(_PADDING))]
        return es.event(event_type, orjson.dumps(body))

    choice = gen.choices[0]
    await pacer.first_token()
    yield frame("messageStart", {"role": "assistant"})
    step = 0
    index = 0
    if reasoning is not None:  # the thinking first, as one block of deltas (no contentBlockStart for it)
        for piece in reasoning.pieces:
            if step:
                await pacer.token(step)
            step += 1
            yield frame("contentBlockDelta", {"delta": {"reasoningContent": {"text": piece}}, "contentBlockIndex": 0})
        if reasoning.signature is not None:
            yield frame("contentBlockDelta", {"delta": {"reasoningContent": {"signature": reasoning.signature}},
                                              "contentBlockIndex": 0})
        yield frame("contentBlockStop", {"contentBlockIndex": 0})
        index += 1
    if choice.tokens or not choice.tool_calls:
        for token in choice.tokens or [""]:
            if step:
                await pacer.token(step)
            step += 1
            yield frame("contentBlockDelta", {"delta": {"text": token}, "contentBlockIndex": index})
        yield frame("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    for call in choice.tool_calls:
        start = {"toolUse": {"toolUseId": tool_use_id(call.key), "name": call.name}}
        yield frame("contentBlockStart", {"start": start, "contentBlockIndex": index})
        for fragment in call.fragments:
            if step:
                await pacer.token(step)
            step += 1
            yield frame("contentBlockDelta", {"delta": {"toolUse": {"input": fragment}}, "contentBlockIndex": index})
        yield frame("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    yield frame("messageStop", {"stopReason": stop_reason(choice)})
    latency = int((clock() - started) * 1000)
    thinking = reasoning.tokens if reasoning is not None else 0
    yield frame("metadata", {"usage": usage(gen, cache, thinking), "metrics": {"latencyMs": latency}})


async def failing_stream(error: BedrockError, rng: random.Random, padding: bool) -> AsyncIterator[bytes]:
    """A stream that starts, then fails with a modelled exception frame (Bedrock's mid-stream errors)."""
    start: dict[str, Any] = {"role": "assistant"}
    if padding:
        start["p"] = _PADDING[: rng.randint(1, len(_PADDING))]
    yield es.event("messageStart", orjson.dumps(start))
    member = STREAM_EXCEPTIONS.get(error.type, "internalServerException")
    body: dict[str, Any] = {"message": error.message}
    if member == "modelStreamErrorException":
        body.update(originalStatusCode=error.status, originalMessage=error.message)
    yield es.exception(member, orjson.dumps(body))
