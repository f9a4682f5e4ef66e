"""The OpenAI provider reads a stream to the end of its body, so the keep-alive connection goes back to the pool
even when the upstream sends its last bytes (the chunked terminator) a moment after `data: [DONE]`."""

from __future__ import annotations

import asyncio

from skyrelay.canonical import ChatRequest
from skyrelay.config import Deployment
from skyrelay.net.server import StreamResponse, start_server
from skyrelay.providers.openai import OpenAIProvider

CHUNK = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
         b'"delta":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}\n\n')


async def test_stream_connection_is_reused_when_the_terminator_comes_late():
    async def handler(request):
        async def body():
            yield CHUNK
            yield b"data: [DONE]\n\n"
            await asyncio.sleep(0.05)  # the end of the chunked body arrives later, as over a real network
        return StreamResponse(200, body(), [("content-type", "text/event-stream")])

    server = await start_server(handler)
    provider = OpenAIProvider(Deployment("d", "g", "openai", model="m", base_url=f"http://127.0.0.1:{server.port}/v1"))
    try:
        for _ in range(2):
            chunks = [c async for c in provider.chat_stream(ChatRequest(model="g", messages=[], stream=True))]
            assert [c.content for c in chunks] == ["hi"]
            assert (provider.http._open, len(provider.http._idle)) == (1, 1)
    finally:
        await provider.aclose()
        await server.close()


def test_stream_usage_false_sends_no_stream_options():
    """Some OpenAI-compatible servers refuse `stream_options`: `stream_usage: false` leaves it out entirely."""
    from skyrelay.config import parse_config

    def body_for(extra: dict) -> dict:
        config = parse_config({"model_groups": {"g": {"deployments": [
            {"name": "d", "kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", **extra}]}}}, env={})
        provider = OpenAIProvider(config.model_groups["g"].deployments[0])
        req = ChatRequest(model="g", messages=[], stream=True, raw={
            "model": "g", "messages": [], "stream": True, "stream_options": {"include_usage": True}})
        return provider.chat_body(req)

    assert body_for({})["stream_options"] == {"include_usage": True}
    assert "stream_options" not in body_for({"stream_usage": False})
    assert body_for({"stream_usage": True})["stream_options"] == {"include_usage": True}
