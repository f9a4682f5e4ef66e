"""A static OpenAI-shaped upstream for overhead benchmarks: the same completion (or 20-chunk stream) every time,
so that what the benchmark measures is the hop in front of it, not the upstream (like nginx serving a file)."""

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
JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]


async def handler(request):
    if b'"stream":true' in request.body.replace(b" ", b""):
        async def chunks():
            for c in STREAM:
                yield c
        return StreamResponse(200, chunks(), SSE)
    return Response(200, COMPLETION, JSON)


if __name__ == "__main__":
    import asyncio

    async def run():
        server = await start_server(handler, "127.0.0.1", int(sys.argv[1]))
        print(f"upstream ready on {server.port}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(run())
