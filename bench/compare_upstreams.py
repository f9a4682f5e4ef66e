"""The upstreams `bench/compare.py` puts behind every proxy: a static nginx (OpenAI completion and 20-chunk stream,
as files are served: the cheapest upstream there is) and a Python one for what nginx cannot serve statically: a
trickling OpenAI stream (each chunk sent alone, a few ms apart, for per-chunk CPU), Anthropic's Messages SSE and
Bedrock's Converse event stream (for the translated routes), each also trickled under the `/trickle/` prefix. Run
as a script, the Python upstream listens."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from static_upstream import COMPLETION, STREAM, WORDS  # noqa: E402  (the same bodies gateway_overhead uses)

TRICKLE_GAP_S = 0.003
SSE = [("content-type", "text/event-stream")]
JSON = [("content-type", "application/json")]
EVENTS = [("content-type", "application/vnd.amazon.eventstream")]


def nginx_upstream_conf(port: int, workdir: Path) -> str:
    """Static answers to POST on two paths (`return` serves any method; the body is the file nginx would send)."""
    stream = b"".join(STREAM).decode()
    return f"""
daemon off; master_process off; worker_processes 1; pid {workdir}/upstream.pid;
error_log {workdir}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000; {_temp_paths(workdir, "up")}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION.decode()}'; }}
    location = /stream/v1/chat/completions {{ default_type text/event-stream; return 200 '{stream}'; }}
  }}
}}
"""


def nginx_proxy_conf(port: int, upstream_port: int, workdir: Path, trickle_port: int, python_port: int) -> str:
    """nginx as the floor of any hop: proxy_pass with pooled keep-alive upstream connections, unbuffered; a second
    server in the same process proxies to the Python upstream (the trickled stream)."""
    return f"""
daemon off; master_process off; worker_processes 1; pid {workdir}/proxy.pid;
error_log {workdir}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000; {_temp_paths(workdir, "proxy")}
  upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  upstream python {{ server 127.0.0.1:{python_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
  server {{
    listen 127.0.0.1:{trickle_port} backlog=4096;
    location / {{
      proxy_pass http://python; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def _temp_paths(workdir: Path, tag: str) -> str:
    return " ".join(f"{name}_temp_path {workdir}/{tag}-{name};"
                    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def anthropic_answers() -> tuple[bytes, list[bytes]]:
    text = (WORDS * 7).strip()
    whole = orjson.dumps({"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
                          "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                          "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 140}})

    def event(name: str, body: dict) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"

    chunks = [event("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}})]
    chunks += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": w + " "}})
               for w in WORDS.split()[:18]]
    chunks += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
               event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                         "stop_sequence": None},
                                       "usage": {"output_tokens": 18}}),
               event("message_stop", {"type": "message_stop"})]
    return whole, chunks


def bedrock_answers() -> tuple[bytes, list[bytes]]:
    from skyrelay.emulator.protocols.bedrock_eventstream import event

    text = (WORDS * 7).strip()
    whole = orjson.dumps({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                          "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 140,
                                                              "totalTokens": 152},
                          "metrics": {"latencyMs": 1}})
    frames = [event("messageStart", orjson.dumps({"role": "assistant"}))]
    frames += [event("contentBlockDelta", orjson.dumps({"contentBlockIndex": 0, "delta": {"text": w + " "}}))
               for w in WORDS.split()[:18]]
    frames += [event("contentBlockStop", orjson.dumps({"contentBlockIndex": 0})),
               event("messageStop", orjson.dumps({"stopReason": "end_turn"})),
               event("metadata", orjson.dumps({"usage": {"inputTokens": 12, "outputTokens": 18, "totalTokens": 30},
                                               "metrics": {"latencyMs": 1}}))]
    return whole, frames


async def serve(port: int) -> None:
    from skyrelay.net.server import Response, StreamResponse, start_server

    anthropic_whole, anthropic_stream = anthropic_answers()
    bedrock_whole, bedrock_stream = bedrock_answers()

    def streamed(chunks: list[bytes], headers, gap: float = 0.0) -> StreamResponse:
        async def body():
            for chunk in chunks:
                if gap:
                    await asyncio.sleep(gap)
                yield chunk
        return StreamResponse(200, body(), headers)

    async def handler(request):
        path = request.path
        wants_stream = b'"stream":true' in request.body.replace(b" ", b"")
        gap = TRICKLE_GAP_S if path.startswith("/trickle/") else 0.0  # each chunk its own upstream write
        if path.endswith("/v1/messages"):
            return streamed(anthropic_stream, SSE, gap) if wants_stream else Response(200, anthropic_whole, JSON)
        if path.endswith("/converse-stream"):
            return streamed(bedrock_stream, EVENTS, gap)
        if path.endswith("/converse"):
            return Response(200, bedrock_whole, JSON)
        return streamed(STREAM, SSE, gap) if wants_stream else Response(200, COMPLETION, JSON)

    server = await start_server(handler, "127.0.0.1", port)
    print(f"upstream ready on {server.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
