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
event carries its `sequence_number`. Events made at the same moment (the opening pair, an item's closing events,
the whole ending) leave as one write; a text delta, the commonest event, is spliced from pre-encoded pieces. A
stream that passed through from a deployment's own Responses API is forwarded event for event
(`render_any_stream`); a failure there ends it with an `error` event.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator

import orjson

from ... import errors
from ...canonical import ChatChunk
from . import reasoning
from .response import base, call_item, finish, message_item, new_id, render_usage, text_part


_DELTA_TAIL = b',"logprobs":[],"sequence_number":%d}\n\n'
# A text delta's tail for the first sequence numbers (most answers' whole stream): no number formatted per delta.
_DELTA_TAILS = tuple(_DELTA_TAIL % seq for seq in range(1024))


class _Events:
    """Numbers and frames events."""

    __slots__ = ("seq",)

    def __init__(self):
        self.seq = 0

    def delta(self, head: bytes, text: str) -> bytes:
        """A text delta, written from its fixed head (`_delta_head`) and tail without building a dict."""
        seq = self.seq
        self.seq = seq + 1
        try:
            tail = _DELTA_TAILS[seq]
        except IndexError:
            tail = _DELTA_TAIL % seq
        return b"".join((head, orjson.dumps(text), tail))

    def frame(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload["type"] = kind
        payload["sequence_number"] = self.seq
        self.seq += 1
        return b"".join((b"event: ", kind.encode(), b"\ndata: ", orjson.dumps(payload), b"\n\n"))

    def lifecycle(self, kind: str, body: bytes) -> bytes:
        """An event carrying the whole response, `body` already encoded (once for the two opening events); the
        bytes `frame(kind, {"response": ...})` would write."""
        seq = self.seq
        self.seq = seq + 1
        kind_bytes = kind.encode()
        return b"".join((b"event: ", kind_bytes, b'\ndata: {"response":', body, b',"type":"', kind_bytes,
                         b'","sequence_number":', str(seq).encode(), b"}\n\n"))


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
    events = _Events()
    output = body["output"]  # the finished items, in order (the completed response's output)
    opening = orjson.dumps(body)
    yield events.lifecycle("response.created", opening) + events.lifecycle("response.in_progress", opening)
    text: list[str] | None = None  # the open message item's text so far
    message_id = f"msg_{response_id}"
    calls: dict[int, dict[str, Any]] = {}  # the open function_call items, by the cloud's tool-call index
    thought: _Thought | None = None  # the open reasoning item
    shown: reasoning.Shown | None = None  # what the client asked to see of the reasoning (read at the first thought)
    finish_reason = None
    usage = None
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish_reason = chunk.finish_reason
            if chunk.reasoning or chunk.thinking_block is not None:
                frames = []  # this chunk's events, one write
                if text is not None:  # thinking between two texts: the first text's item ends here
                    frames += _close_message(events, output, message_id, "".join(text))
                    text, message_id = None, f"msg_{response_id}_{len(output) + 1}"
                frames += _close_calls(events, output, calls)
                if thought is None:
                    if shown is None:
                        shown = reasoning.Shown(data, kept)
                    thought = _Thought(f"rs_{response_id}_{len(output)}", len(output))
                    frames.append(events.frame("response.output_item.added", {"output_index": thought.index, "item": {
                        "id": thought.id, "type": "reasoning", "summary": [], "encrypted_content": None}}))
                if chunk.reasoning:
                    frames += thought.add(events, chunk.reasoning, shown)
                if chunk.thinking_block is not None:
                    frames += thought.close(events, output, shown, chunk.thinking_block)
                    thought = None
                if frames:
                    yield b"".join(frames)
            if chunk.content:
                if thought is not None or text is None:  # a new message item (maybe after thoughts) opens
                    frames = []
                    if thought is not None:
                        frames += thought.close(events, output, shown, None)
                        thought = None
                    if text is None:
                        text = []
                        frames += _open_message(events, message_id, len(output))
                        delta_head = _delta_head(message_id, len(output))
                    yield b"".join(frames)
                text.append(chunk.content)
                yield events.delta(delta_head, chunk.content)
            if chunk.tool_calls:
                frames = []
                for delta in chunk.tool_calls:
                    if thought is not None:
                        frames += thought.close(events, output, shown, None)
                        thought = None
                    if text is not None:  # text comes before the calls: its item ends where they begin
                        frames += _close_message(events, output, message_id, "".join(text))
                        text = None
                    call = calls.get(delta.index)
                    if call is None:
                        frames += _close_calls(events, output, calls)  # one call at a time: the previous is complete
                        call = calls[delta.index] = call_item(
                            f"fc_{response_id}_{len(output)}", delta.id or f"call_{response_id}_{len(output)}",
                            delta.name or "", "", data, "in_progress")
                        call["output_index"] = len(output)
                        frames.append(events.frame("response.output_item.added", {
                            "output_index": len(output), "item": _public(call)}))
                    if delta.arguments:
                        call["arguments"] += delta.arguments
                        frames.append(events.frame("response.function_call_arguments.delta", {
                            "item_id": call["id"], "output_index": call["output_index"], "delta": delta.arguments}))
                if frames:
                    yield b"".join(frames)
    except errors.GatewayError as err:
        body["status"] = "failed"
        body["error"] = {"code": "rate_limit_exceeded" if err.status == 429 else "server_error",
                         "message": err.message}
        yield events.lifecycle("response.failed", orjson.dumps(body))
        return
    frames = []  # the ending, one write: the open items' closing events, then the finished response
    if thought is not None:
        frames += thought.close(events, output, shown, None)
    if text is not None:
        frames += _close_message(events, output, message_id, "".join(text))
    frames += _close_calls(events, output, calls)
    if usage is not None:
        body["usage"] = render_usage(usage)
    finish(body, finish_reason)
    if on_done is not None:
        on_done(body)
    kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
    frames.append(events.lifecycle(kind, orjson.dumps(body)))
    yield b"".join(frames)


def _delta_head(item_id: str, index: int) -> bytes:
    return (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":'
            + orjson.dumps(item_id) + b',"output_index":' + str(index).encode() + b',"content_index":0,"delta":')


def _open_message(events: _Events, item_id: str, index: int) -> list[bytes]:
    return [events.frame("response.output_item.added", {
                "output_index": index, "item": message_item(item_id, None, "in_progress")}),
            events.frame("response.content_part.added", {
                "item_id": item_id, "output_index": index, "content_index": 0, "part": text_part("")})]


def _close_message(events: _Events, output: list, item_id: str, text: str) -> list[bytes]:
    index = len(output)
    frames = [events.frame("response.output_text.done", {
                  "item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
              events.frame("response.content_part.done", {
                  "item_id": item_id, "output_index": index, "content_index": 0, "part": text_part(text)})]
    item = message_item(item_id, text)
    output.append(item)
    frames.append(events.frame("response.output_item.done", {"output_index": index, "item": item}))
    return frames


class _Thought:
    """An open reasoning item: its thoughts so far, streamed as its summary when the client asked for one."""

    __slots__ = ("id", "index", "text", "summarised")

    def __init__(self, item_id: str, index: int):
        self.id = item_id
        self.index = index
        self.text: list[str] = []
        self.summarised = False  # the summary part has been announced

    def add(self, events: _Events, fragment: str, shown: reasoning.Shown) -> list[bytes]:
        self.text.append(fragment)
        if not shown.summary:
            return []
        where = {"item_id": self.id, "output_index": self.index, "summary_index": 0}
        frames = []
        if not self.summarised:
            self.summarised = True
            frames.append(events.frame("response.reasoning_summary_part.added",
                                       {**where, "part": reasoning.summary_part("")}))
        frames.append(events.frame("response.reasoning_summary_text.delta", {**where, "delta": fragment}))
        return frames

    def close(self, events: _Events, output: list, shown: reasoning.Shown,
              block: dict[str, Any] | None) -> list[bytes]:
        """End the item; `block`: the finished thinking block (signature included), None when the cloud sent none."""
        text = "".join(self.text)
        frames = []
        if self.summarised:
            where = {"item_id": self.id, "output_index": self.index, "summary_index": 0}
            frames.append(events.frame("response.reasoning_summary_text.done", {**where, "text": text}))
            frames.append(events.frame("response.reasoning_summary_part.done",
                                       {**where, "part": reasoning.summary_part(text)}))
        item = reasoning.item(self.id, [block] if block is not None else [], shown, text)
        output.append(item)
        frames.append(events.frame("response.output_item.done", {"output_index": self.index, "item": item}))
        return frames


def _close_calls(events: _Events, output: list, calls: dict[int, dict[str, Any]]) -> list[bytes]:
    frames = []
    for call in calls.values():
        index = call.pop("output_index")
        call["status"] = "completed"
        frames.append(events.frame("response.function_call_arguments.done", {
            "item_id": call["id"], "output_index": index, "name": call["name"], "arguments": call["arguments"]}))
        output.append(call)
        frames.append(events.frame("response.output_item.done", {"output_index": index, "item": call}))
    calls.clear()
    return frames


def _public(call: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in call.items() if key != "output_index"}
