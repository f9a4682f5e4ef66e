"""Micro-benchmark of the Anthropic pass-through beside the OpenAI pass-through, in-process. Not a test.

Run: .venv/bin/python bench/anthropic_passthrough.py
Times the gateway's own Python work per request on each same-protocol path, without sockets (the HTTP stack is
the same for both, and bench/gateway_overhead.py measures it): read the client's body, build the upstream body
and encode it, read the upstream's answer for usage and render what the client gets; and for a stream, decode
the upstream's events (one per read, as a paced stream arrives) and render them; the OpenAI stream also with
every chunk parsed, as before its pass-through read only what the gateway needs. Bodies are a coding agent's turn
(a long system prompt, a tool); the Anthropic one carries cache breakpoints and thinking, as Claude Code sends it.
The budget: the Anthropic pass-through costs no more than the OpenAI one.

Timings are noisy on a shared machine; instruction counts are not. `--calls N --case CASE` runs one case N times
and prints nothing, for callgrind: the instructions per request are (total at N - total at 0) / N.
  .venv/bin/python bench/instructions.py --small 0 --large 4000 -- \
      .venv/bin/python bench/anthropic_passthrough.py --case anthropic --calls {n}
CASE: openai | anthropic (the whole answer), openai-stream | anthropic-stream (the 20-token stream).
"""

from __future__ import annotations

import argparse
import time
import timeit

import orjson

from skyrelay.config import parse_config
from skyrelay.protocols import anthropic as anthropic_protocol
from skyrelay.protocols import openai as openai_protocol
from skyrelay.providers.anthropic import AnthropicProvider
from skyrelay.providers.anthropic.passthrough import native_body, whole_message
from skyrelay.providers.anthropic.passthrough_stream import PassThroughStream
from skyrelay.providers.openai import OpenAIProvider, parse_response
from skyrelay.providers.openai_passthrough import PassThroughChunks
from skyrelay.providers.sse import SSEChunks

SYSTEM = "You are a coding agent. " * 40
TOOL_SCHEMA = {"type": "object", "properties": {"cmd": {"type": "string"}}}
OPENAI_BODY = orjson.dumps({
    "model": "chat", "max_tokens": 256, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": "Fix the failing test in tests/a.py"}],
    "tools": [{"type": "function", "function": {"name": "shell", "description": "Run a command",
                                                "parameters": TOOL_SCHEMA}}],
})
EPHEMERAL = {"type": "ephemeral"}
ANTHROPIC_BODY = orjson.dumps({
    "model": "claude", "max_tokens": 256, "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Fix the failing test in tests/a.py",
                                               "cache_control": EPHEMERAL}]}],
    "tools": [{"name": "shell", "description": "Run a command", "input_schema": TOOL_SCHEMA}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
})
TEXT = "The test fails because the fixture is missing. " * 4
OPENAI_ANSWER = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}})
ANTHROPIC_ANSWER = orjson.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
    "content": [{"type": "thinking", "thinking": "Look at the fixture.", "signature": "c2ln" * 20},
                {"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
              "output_tokens": 30}})
WORDS = [f"word{i} " for i in range(20)]


def _openai_chunk(delta: dict, finish=None, usage=None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


OPENAI_STREAM = b"".join([_openai_chunk({"role": "assistant", "content": ""})]
                         + [_openai_chunk({"content": w}) for w in WORDS]
                         + [_openai_chunk({}, "stop"),
                            _openai_chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 20}),
                            b"data: [DONE]\n\n"])
ANTHROPIC_STREAM = b"".join([
    _event("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                                          "content": [], "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    _event("ping", {}),
    *[_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in WORDS],
    _event("content_block_stop", {"index": 0}),
    _event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": 20}}),
    _event("message_stop", {}),
])
# A paced stream arrives an event per read.
OPENAI_READS = [event + b"\n\n" for event in OPENAI_STREAM.split(b"\n\n")[:-1]]
ANTHROPIC_READS = [event + b"\n\n" for event in ANTHROPIC_STREAM.split(b"\n\n")[:-1]]
CONFIG = parse_config({"server": {"master_key": "k"}, "model_groups": {
    "chat": {"deployments": [{"name": "o", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "g"}]},
    "claude": {"deployments": [{"name": "a", "kind": "anthropic", "base_url": "http://127.0.0.1:9", "model": "c",
                                "api_key": "k"}]}}}, env={})
OPENAI = OpenAIProvider(CONFIG.model_groups["chat"].deployments[0])
ANTHROPIC = AnthropicProvider(CONFIG.model_groups["claude"].deployments[0])


def openai_whole() -> bytes:
    req = openai_protocol.parse_chat(OPENAI_BODY)
    orjson.dumps(OPENAI.chat_body(req))
    resp = parse_response(orjson.loads(OPENAI_ANSWER), "o")
    resp.raw_body = OPENAI_ANSWER
    return openai_protocol.render_chat(resp)


def anthropic_whole() -> bytes:
    req = anthropic_protocol.read_messages(ANTHROPIC_BODY, "interleaved-thinking-2025-05-14", "2023-06-01")
    ANTHROPIC.native_headers(req.anthropic)
    orjson.dumps(native_body(req.anthropic, "claude-x", False))
    return whole_message(ANTHROPIC_ANSWER, orjson.loads(ANTHROPIC_ANSWER), "a").anthropic


def openai_stream(decoder_class=PassThroughChunks, reads=OPENAI_READS) -> None:
    decoder = decoder_class(OpenAIProvider.stream_events("o"))
    for read in reads:
        for chunk in decoder.feed(read):
            openai_protocol.render_chunk(chunk)
    for chunk in decoder.finish():
        openai_protocol.render_chunk(chunk)


def anthropic_stream() -> None:
    decoder = PassThroughStream("a")
    for read in ANTHROPIC_READS:
        for chunk in decoder.feed(read):
            assert chunk.anthropic is not None  # what the route writes as it is
    decoder.finish()


def per_call_us(fn, number: int) -> float:
    """CPU time (not wall time: a shared machine preempts), the best of 7 runs."""
    return min(timeit.repeat(fn, number=number, repeat=7, timer=time.process_time)) / number * 1e6


CASES = {"openai": openai_whole, "anthropic": anthropic_whole,
         "openai-stream": openai_stream, "anthropic-stream": anthropic_stream}


def calls(case: str, n: int) -> None:
    fn = CASES[case]
    fn()  # warm: the first call's one-off work (imports, caches) is not a request's
    for _ in range(n):
        fn()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--calls", type=int)
    args = parser.parse_args()
    if args.case is not None:
        return calls(args.case, args.calls or 0)
    o_w, a_w = per_call_us(openai_whole, 20000), per_call_us(anthropic_whole, 20000)
    o_s, a_s = per_call_us(openai_stream, 2000), per_call_us(anthropic_stream, 2000)
    print(f"whole answer     openai {o_w:6.1f} us   anthropic {a_w:6.1f} us   ({a_w - o_w:+.1f} us)")
    print(f"20-token stream  openai {o_s:6.1f} us   anthropic {a_s:6.1f} us   ({a_s - o_s:+.1f} us)")
    parsed = per_call_us(lambda: openai_stream(SSEChunks), 2000)
    print(f"20-token stream  openai, every chunk parsed (as before the pass-through) {parsed:6.1f} us")
    whole = [OPENAI_STREAM[:OPENAI_STREAM.index(b"\n\n", 300) + 2]]  # the head, then the rest in one read
    whole.append(OPENAI_STREAM[len(whole[0]):])
    one, one_parsed = (per_call_us(lambda: openai_stream(cls, whole), 2000) for cls in (PassThroughChunks, SSEChunks))
    print(f"the same in two reads  openai pass-through {one:6.1f} us   every chunk parsed {one_parsed:6.1f} us")


if __name__ == "__main__":
    main()
