"""A static upstream for overhead benchmarks: the same completion (or 20-chunk stream) every time, so that what the
benchmark measures is the hop in front of it, not the upstream (like nginx serving a file). OpenAI-shaped on
/v1/chat/completions; Anthropic-shaped on /v1/messages (the same text, as a Message or its 24-event stream)."""

from __future__ import annotations

import sys

import orjson
import uvloop

from skyrelay.net.server import Response, StreamResponse, start_server

WORDS = "The quick brown fox jumps over the lazy dog while the gateway keeps every token accounted for. "
COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": (WORDS * 7).strip(), "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 140, "total_tokens": 152},
})


def chunk(delta: dict, finish=None, usage=None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": w + " "}) for w in WORDS.split()[:18]]
STREAM += [chunk({}, "stop"), chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}),
           b"data: [DONE]\n\n"]
MESSAGE = orjson.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
    "content": [{"type": "text", "text": (WORDS * 7).strip()}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 140},
})


def event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


MESSAGE_STREAM = [
    event("message_start", {"message": {"id": "msg_bench", "type": "message", "role": "assistant",
                                        "model": "claude-bench", "content": [], "stop_reason": None,
                                        "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    event("ping", {}),
    *[event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w + " "}})
      for w in WORDS.split()[:18]],
    event("content_block_stop", {"index": 0}),
    event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": 18}}),
    event("message_stop", {}),
]
JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]


async def handler(request):
    anthropic = request.path.startswith("/v1/messages")
    if b'"stream":true' in request.body.replace(b" ", b""):
        async def chunks():
            for c in MESSAGE_STREAM if anthropic else STREAM:
                yield c
        return StreamResponse(200, chunks(), SSE)
    return Response(200, MESSAGE if anthropic else COMPLETION, JSON)


if __name__ == "__main__":
    import asyncio

    async def run():
        server = await start_server(handler, "127.0.0.1", int(sys.argv[1]))
        print(f"upstream ready on {server.port}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(run())
