"""The canonical chunk stream -> the Responses API's SSE event sequence.

    response.created, response.in_progress,
    per output item: response.output_item.added,
      reasoning: response.reasoning_summary_part.added, response.reasoning_summary_text.delta...,
             response.reasoning_summary_text.done, response.reasoning_summary_part.done (when a summary was asked)
      text:  response.content_part.added, response.output_text.delta..., response.output_text.done,
             response.content_part.done
      tools: response.function_call_arguments.delta..., response.function_call_arguments.done
    response.output_item.done, then response.completed (or response.incomplete) with usage.

A failure after the stream started ends it with `response.failed` carrying the error, never a silent cut. Every
event carries its `sequence_number`. A stream that passed through from a deployment's own Responses API is
forwarded event for event (`render_any_stream`); a failure there ends it with an `error` event.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator

import orjson

from ... import errors
from ...canonical import ChatChunk
from . import reasoning
from .response import base, call_item, finish, message_item, new_id, render_usage, text_part


class _Events:
    """Numbers and frames events; holds the response body the lifecycle events carry."""

    __slots__ = ("seq", "body")

    def __init__(self, body: dict[str, Any]):
        self.seq = 0
        self.body = body

    def delta(self, head: bytes, text: str) -> bytes:
        """A text delta, the commonest event, written from its fixed head without building a dict."""
        seq = self.seq
        self.seq = seq + 1
        return b"".join((head, orjson.dumps(text), b',"logprobs":[],"sequence_number":', str(seq).encode(), b"}\n\n"))

    def frame(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload["type"] = kind
        payload["sequence_number"] = self.seq
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def render_any_stream(stream: AsyncIterator[ChatChunk], data: dict[str, Any], model: str,
                      on_done: Any = None, kept: dict[str, str] | None = None) -> AsyncIterator[bytes]:
    """The client's events, whichever way the request went: the deployment's own events as they came, or
    rendered from canonical chunks. `on_done(response)` gets the finished Response (to store it).

    The dispatcher's stream (dispatch_stream.CommittedStream) shows its first chunk without taking it: a
    translated stream then goes straight to render_stream, which pulls the dispatcher's stream itself. Every
    frame crosses one generator instead of three (this one re-yielding, and a chain putting the first chunk back)."""
    peek = getattr(stream, "peek", None)
    first = peek() if peek is not None else None
    if first is not None and first.responses is None:
        return render_stream(stream, data, model, on_done, kept)
    return _render_any(stream, data, model, on_done, kept)


async def _render_any(stream: AsyncIterator[ChatChunk], data: dict[str, Any], model: str,
                      on_done: Any, kept: dict[str, str] | None) -> AsyncIterator[bytes]:
    iterator = stream.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except errors.GatewayError as err:
        yield _error_event(err, 0)
        return
    if first is not None and first.responses is not None:
        async for frame in _pass_through(first, iterator, on_done):
            yield frame
        return
    async for frame in render_stream(_chain(first, iterator), data, model, on_done, kept):
        yield frame


async def _chain(first: ChatChunk | None, rest: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


async def _pass_through(first: ChatChunk, rest: AsyncIterator[ChatChunk], on_done: Any) -> AsyncIterator[bytes]:
    sent = first.responses.count(b"\n\n")  # events sent: each ends its one-line JSON with a blank line
    if first.responses_data is not None and on_done is not None:
        on_done(first.responses_data)
    yield first.responses
    try:
        async for chunk in rest:
            if chunk.responses_data is not None and on_done is not None:
                on_done(chunk.responses_data)
            if chunk.responses:
                sent += chunk.responses.count(b"\n\n")
                yield chunk.responses
    except errors.GatewayError as err:
        yield _error_event(err, sent)  # OpenAI numbers events from 0: the next number is how many were sent


def _error_event(err: errors.GatewayError, sequence_number: int) -> bytes:
    payload = {"type": "error", "code": "rate_limit_exceeded" if err.status == 429 else "server_error",
               "message": err.message, "param": None, "sequence_number": sequence_number}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


async def render_stream(stream: AsyncIterator[ChatChunk], data: dict[str, Any], model: str,
                        on_done: Any = None, kept: dict[str, str] | None = None) -> AsyncIterator[bytes]:
    response_id = new_id()
    body = base(data, response_id, model, int(time.time()), "in_progress")
    events = _Events(body)
    output = body["output"]  # the finished items, in order (the completed response's output)
    yield events.frame("response.created", {"response": body})
    yield events.frame("response.in_progress", {"response": body})
    text: list[str] | None = None  # the open message item's text so far
    message_id = f"msg_{response_id}"
    calls: dict[int, dict[str, Any]] = {}  # the open function_call items, by the cloud's tool-call index
    thought: _Thought | None = None  # the open reasoning item
    shown = reasoning.Shown(data, kept)
    finish_reason = None
    usage = None
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish_reason = chunk.finish_reason
            if chunk.reasoning or chunk.thinking_block is not None:
                if text is not None:  # thinking between two texts: the first text's item ends here
                    for event in _close_message(events, output, message_id, "".join(text)):
                        yield event
                    text, message_id = None, f"msg_{response_id}_{len(output) + 1}"
                for event in _close_calls(events, output, calls):
                    yield event
                if thought is None:
                    thought = _Thought(f"rs_{response_id}_{len(output)}", len(output))
                    yield events.frame("response.output_item.added", {"output_index": thought.index, "item": {
                        "id": thought.id, "type": "reasoning", "summary": [], "encrypted_content": None}})
                if chunk.reasoning:
                    for event in thought.add(events, chunk.reasoning, shown):
                        yield event
                if chunk.thinking_block is not None:
                    for event in thought.close(events, output, shown, chunk.thinking_block):
                        yield event
                    thought = None
            if chunk.content:
                if thought is not None:
                    for event in thought.close(events, output, shown, None):
                        yield event
                    thought = None
                if text is None:
                    text = []
                    item = message_item(message_id, None, "in_progress")
                    yield events.frame("response.output_item.added", {"output_index": len(output), "item": item})
                    yield events.frame("response.content_part.added", {
                        "item_id": item["id"], "output_index": len(output), "content_index": 0,
                        "part": text_part("")})
                    delta_head = _delta_head(message_id, len(output))
                text.append(chunk.content)
                yield events.delta(delta_head, chunk.content)
            for delta in chunk.tool_calls or ():
                if thought is not None:
                    for event in thought.close(events, output, shown, None):
                        yield event
                    thought = None
                if text is not None:  # text comes before the calls: its item ends where they begin
                    for event in _close_message(events, output, message_id, "".join(text)):
                        yield event
                    text = None
                call = calls.get(delta.index)
                if call is None:
                    for event in _close_calls(events, output, calls):
                        yield event  # one call at a time: the previous call is complete
                    call = calls[delta.index] = call_item(
                        f"fc_{response_id}_{len(output)}", delta.id or f"call_{response_id}_{len(output)}",
                        delta.name or "", "", data, "in_progress")
                    call["output_index"] = len(output)
                    yield events.frame("response.output_item.added", {
                        "output_index": len(output), "item": _public(call)})
                if delta.arguments:
                    call["arguments"] += delta.arguments
                    yield events.frame("response.function_call_arguments.delta", {
                        "item_id": call["id"], "output_index": call["output_index"], "delta": delta.arguments})
    except errors.GatewayError as err:
        body["status"] = "failed"
        body["error"] = {"code": "rate_limit_exceeded" if err.status == 429 else "server_error",
                         "message": err.message}
        yield events.frame("response.failed", {"response": body})
        return
    if thought is not None:
        for event in thought.close(events, output, shown, None):
            yield event
    if text is not None:
        for event in _close_message(events, output, message_id, "".join(text)):
            yield event
    for event in _close_calls(events, output, calls):
        yield event
    if usage is not None:
        body["usage"] = render_usage(usage)
    finish(body, finish_reason)
    if on_done is not None:
        on_done(body)
    kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
    yield events.frame(kind, {"response": body})


def _delta_head(item_id: str, index: int) -> bytes:
    return (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":'
            + orjson.dumps(item_id) + b',"output_index":' + str(index).encode() + b',"content_index":0,"delta":')


def _close_message(events: _Events, output: list, item_id: str, text: str):
    index = len(output)
    yield events.frame("response.output_text.done", {
        "item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []})
    yield events.frame("response.content_part.done", {
        "item_id": item_id, "output_index": index, "content_index": 0, "part": text_part(text)})
    item = message_item(item_id, text)
    output.append(item)
    yield events.frame("response.output_item.done", {"output_index": index, "item": item})


class _Thought:
    """An open reasoning item: its thoughts so far, streamed as its summary when the client asked for one."""

    __slots__ = ("id", "index", "text", "summarised")

    def __init__(self, item_id: str, index: int):
        self.id = item_id
        self.index = index
        self.text: list[str] = []
        self.summarised = False  # the summary part has been announced

    def add(self, events: _Events, fragment: str, shown: reasoning.Shown):
        self.text.append(fragment)
        if not shown.summary:
            return
        where = {"item_id": self.id, "output_index": self.index, "summary_index": 0}
        if not self.summarised:
            self.summarised = True
            yield events.frame("response.reasoning_summary_part.added", {**where, "part": reasoning.summary_part("")})
        yield events.frame("response.reasoning_summary_text.delta", {**where, "delta": fragment})

    def close(self, events: _Events, output: list, shown: reasoning.Shown, block: dict[str, Any] | None):
        """End the item; `block`: the finished thinking block (signature included), None when the cloud sent none."""
        text = "".join(self.text)
        if self.summarised:
            where = {"item_id": self.id, "output_index": self.index, "summary_index": 0}
            yield events.frame("response.reasoning_summary_text.done", {**where, "text": text})
            yield events.frame("response.reasoning_summary_part.done", {**where, "part": reasoning.summary_part(text)})
        item = reasoning.item(self.id, [block] if block is not None else [], shown, text)
        output.append(item)
        yield events.frame("response.output_item.done", {"output_index": self.index, "item": item})


def _close_calls(events: _Events, output: list, calls: dict[int, dict[str, Any]]):
    for call in calls.values():
        index = call.pop("output_index")
        call["status"] = "completed"
        yield events.frame("response.function_call_arguments.done", {
            "item_id": call["id"], "output_index": index, "name": call["name"], "arguments": call["arguments"]})
        output.append(call)
        yield events.frame("response.output_item.done", {"output_index": index, "item": call})
    calls.clear()


def _public(call: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in call.items() if key != "output_index"}
