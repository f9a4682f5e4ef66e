"""The floor under the gateway: a proxy built on the same HTTP server and pooled client, doing nothing else
(no parsing, auth, routing or usage). The benchmark runs it beside the gateway so the gap between the two is the
cost of the gateway's own logic, measured in the same run."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from skyrelay.net.client import HttpClient
from skyrelay.net.server import Response, start_server
from skyrelay.net.server import StreamResponse
from skyrelay.runtime import tune_gc

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]


async def main(upstream_port: int, port: int) -> None:
    upstream = HttpClient(f"http://127.0.0.1:{upstream_port}")

    async def handler(request):  # the request's own path upstream (chat, messages, compare.py's /stream/...)
        resp = await upstream.send("POST", request.path, JSON, request.body)
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            async def relay():
                try:
                    async for chunk in resp.iter_chunks():
                        yield chunk
                finally:
                    await resp.aclose()
            return StreamResponse(200, relay(), SSE)
        body = await resp.read()
        await resp.aclose()
        return Response(resp.status, body, JSON)

    await start_server(handler, "127.0.0.1", port)
    tune_gc()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
