"""Micro-benchmark of the Responses API translation beside chat completions, in-process. Not a test.

Run: .venv/bin/python bench/responses_translation.py
Times what each inbound protocol adds to a request: parse the body into the canonical request, render the
canonical answer (built from canonical fields, as for any non-OpenAI cloud), and render a 20-chunk stream; and,
for deployments that take the body as it came (chat to OpenAI-compatible, Responses to OpenAI and Azure), read
the body and build the upstream's. The budget is the Responses route at most 15 us above chat completions.

Timings are noisy on a shared machine; instruction counts are not. `--calls N --case CASE` runs one case N times
and prints nothing, for callgrind: the instructions per call are (total at N - total at 0) / N (bench/instructions.py).
  .venv/bin/python bench/instructions.py -- .venv/bin/python bench/responses_translation.py --case responses-stream \
      --calls {n}
CASE: chat-whole | responses-whole | chat-stream | responses-stream | chat-forwarded | responses-forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit

import orjson

from skyrelay.canonical import ChatChunk, ChatResponse, Choice, Usage
from skyrelay.protocols import openai, responses
from skyrelay.providers.openai_responses import native_body
from skyrelay.server.openai_routes import sse_stream

SYSTEM = "You are a coding agent. " * 40
CHAT_BODY = orjson.dumps({
    "model": "chat", "max_tokens": 256, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": "Fix the failing test in tests/a.py"}],
    "tools": [{"type": "function", "function": {"name": "shell", "description": "Run a command",
               "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}}],
})
RESPONSES_BODY = orjson.dumps({
    "model": "chat", "max_output_tokens": 256, "instructions": SYSTEM, "store": False,
    "input": [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Fix the failing test in tests/a.py"}]}],
    "tools": [{"type": "function", "name": "shell", "description": "Run a command",
               "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": False}],
})
CHAT_REQUEST = openai.parse_chat(CHAT_BODY)
ANSWER = ChatResponse(id="x", model="m", created=1, usage=Usage(120, 30, 0),
                      choices=[Choice(content="The test fails because the fixture is missing. " * 4)])
CHUNKS = [ChatChunk(id="x", model="m", created=1, role="assistant")] + [
    ChatChunk(id="x", model="m", created=1, content=f"word{i} ") for i in range(20)] + [
    ChatChunk(id="x", model="m", created=1, finish_reason="stop"),
    ChatChunk(id="x", model="m", created=1, usage=Usage(120, 20, 0))]


async def _decoded(chunks):
    for chunk in chunks:
        yield chunk


class _Committed:
    """What the dispatcher hands a route (dispatch_stream.CommittedStream): the chunk that committed the stream
    already in hand, then the provider's decoder, an async generator."""

    def __init__(self):
        self._head, self._rest = [CHUNKS[0]], _decoded(CHUNKS[1:])

    def __aiter__(self):
        return self

    def peek(self):
        return self._head[0] if self._head else None

    async def __anext__(self):
        if self._head:
            return self._head.pop(0)
        return await self._rest.__anext__()


def _chunks():
    return _Committed()


def chat_whole():
    openai.parse_chat(CHAT_BODY)
    openai.render_chat(ANSWER)


def responses_whole():
    _, data, _ = responses.parse_responses(RESPONSES_BODY)
    responses.render_response(ANSWER, data)


async def _chat_stream():  # what the chat route runs over the dispatcher's chunks (server/openai_routes.py)
    async for _ in sse_stream(_chunks(), CHAT_REQUEST):
        pass


async def _responses_stream(data):  # and the Responses route (server/responses_routes.py)
    async for _ in responses.render_any_stream(_chunks(), data, "chat"):
        pass


def chat_forwarded():
    req = openai.parse_chat(CHAT_BODY)
    body = dict(req.raw)
    body["model"] = "gpt-4o"
    orjson.dumps(body)


def responses_forwarded():
    req = responses.read_responses(RESPONSES_BODY)
    orjson.dumps(native_body(req.responses, "gpt-4o", False, "d"))


def per_call_us(fn, number: int) -> float:
    """CPU time per call (process time, so other processes on a busy machine do not count), best of 5."""
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)) / number * 1e6


def cases(loop: asyncio.AbstractEventLoop) -> dict:
    """Each measured case as a call of no arguments."""
    _, data, _ = responses.parse_responses(RESPONSES_BODY)
    return {"chat-whole": chat_whole, "responses-whole": responses_whole,
            "chat-stream": lambda: loop.run_until_complete(_chat_stream()),
            "responses-stream": lambda: loop.run_until_complete(_responses_stream(data)),
            "chat-forwarded": chat_forwarded, "responses-forwarded": responses_forwarded}


def calls(case: str, count: int) -> None:
    """`count` calls of one case, after one of warm-up (for instruction counts)."""
    loop = asyncio.new_event_loop()
    fn = cases(loop)[case]
    fn()
    for _ in range(count):
        fn()
    loop.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case")
    parser.add_argument("--calls", type=int)
    args = parser.parse_args()
    if args.case is not None:
        return calls(args.case, args.calls or 0)
    _, data, _ = responses.parse_responses(RESPONSES_BODY)
    loop = asyncio.new_event_loop()
    chat_w, resp_w = per_call_us(chat_whole, 20000), per_call_us(responses_whole, 20000)
    chat_s = per_call_us(lambda: loop.run_until_complete(_chat_stream()), 2000)
    resp_s = per_call_us(lambda: loop.run_until_complete(_responses_stream(data)), 2000)
    print(f"whole answer: parse + render   chat {chat_w:6.1f} us   responses {resp_w:6.1f} us   "
          f"(+{resp_w - chat_w:.1f} us)")
    print(f"20-chunk stream render        chat {chat_s:6.1f} us   responses {resp_s:6.1f} us   "
          f"(+{resp_s - chat_s:.1f} us)")
    chat_f, resp_f = per_call_us(chat_forwarded, 20000), per_call_us(responses_forwarded, 20000)
    print(f"forwarded: read + upstream body chat {chat_f:6.1f} us   responses {resp_f:6.1f} us   "
          f"(+{resp_f - chat_f:.1f} us)")


if __name__ == "__main__":
    main()
