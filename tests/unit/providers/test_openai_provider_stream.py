"""The OpenAI provider reads a stream to the end of its body, so the keep-alive connection goes back to the pool
even when the upstream sends its last bytes (the chunked terminator) a moment after `data: [DONE]`; and a body
that ends, however cleanly, before the answer did is a failure, never a whole answer."""

from __future__ import annotations

import asyncio

import pytest

from skyrelay import errors
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


TOKEN = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
         b'"delta":{"content":"half an"},"finish_reason":null}]}\n\n')


async def read_stream(events: list[bytes], framed: bool) -> list:
    """What the provider makes of a 200 stream whose body is `events`, then ends cleanly: with the chunked
    terminator, or (close-delimited: no content-length, not chunked) by closing the connection."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await reader.readuntil(b"\r\n\r\n")  # the head; the body is not needed
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        if framed:
            body = b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
            writer.write(head + b"transfer-encoding: chunked\r\n\r\n" + body)
        else:
            writer.write(head + b"connection: close\r\n\r\n" + b"".join(events))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAIProvider(Deployment("d", "g", "openai", model="m", base_url=f"http://127.0.0.1:{port}/v1"))
    try:
        return [c async for c in provider.chat_stream(ChatRequest(model="g", messages=[], stream=True))]
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("framed", [True, False], ids=["chunked", "close-delimited"])
async def test_a_body_that_ends_cleanly_before_done_is_a_failure(framed):
    with pytest.raises(errors.UpstreamError, match="'d' ended the stream before \\[DONE\\]"):
        await read_stream([TOKEN, TOKEN], framed)


@pytest.mark.parametrize("framed", [True, False], ids=["chunked", "close-delimited"])
async def test_a_stream_that_finished_is_whole_without_done(framed):
    """Some OpenAI-compatible servers never send [DONE]: a finish_reason already said the answer was complete."""
    chunks = await read_stream([TOKEN, CHUNK], framed)
    assert [c.content for c in chunks] == ["half an", "hi"] and chunks[-1].finish_reason == "stop"


async def test_a_close_delimited_stream_with_done_is_whole():
    chunks = await read_stream([TOKEN, b"data: [DONE]\n\n"], framed=False)
    assert [c.content for c in chunks] == ["half an"]


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
