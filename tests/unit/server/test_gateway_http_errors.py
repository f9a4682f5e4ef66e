"""The HTTP layer's own refusals, rendered by the gateway in the format of the route the request was for:
Anthropic's error JSON and request-id header on /v1/messages*, OpenAI's elsewhere and when the path is unknown.
And the 415 a JSON route answers a body that is not JSON (a browser's cross-site form post), development mode
included. Raw bytes over real sockets, under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import orjson
import pytest

from skyrelay import errors
from skyrelay.config import parse_config
from skyrelay.net import refusals
from skyrelay.server import Gateway
from tests.support.http_peer import Peer, Reply
from tests.support.loops import on_each_loop

COUNT = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}'


@contextlib.asynccontextmanager
async def gateway(**server):
    config = parse_config({
        "server": {"host": "127.0.0.1", "port": 0, **server},
        "model_groups": {"chat": {"deployments": [
            {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}]}},  # never called here
    }, env={})
    app = Gateway(config)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


def request(path: str, body: bytes = COUNT, *, headers: str = "content-type: application/json\r\n",
            version: str = "1.1", host: str = "host: gw\r\n") -> bytes:
    return (f"POST {path} HTTP/{version}\r\n{host}content-length: {len(body)}\r\n{headers}\r\n").encode() + body


async def exchange(app: Gateway, raw: bytes) -> Reply:
    peer = await Peer.open(app.server.port)
    await peer.send(raw)
    reply = await peer.response()
    peer.close()
    return reply


def anthropic_error(reply: Reply, status: int, error_type: str) -> str:
    body = reply.json()
    assert reply.status == status and reply.headers["content-type"] == "application/json"
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert reply.headers["request-id"] == body["request_id"] and body["request_id"].startswith("req_")
    assert reply.headers["x-request-id"].startswith("req_")
    return body["error"]["message"]


def openai_error(reply: Reply, status: int, error_type: str = "invalid_request_error") -> str:
    error = reply.json()["error"]
    assert reply.status == status and reply.headers["content-type"] == "application/json"
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == error_type
    assert "request-id" not in reply.headers and reply.headers["x-request-id"].startswith("req_")
    return error["message"]


MESSAGES_REFUSALS = [  # (raw request to /v1/messages, status, Anthropic error type)
    (request("/v1/messages", version="2.0"), 505, "api_error"),
    (request("/v1/messages", host="host: a\r\nhost: b\r\n"), 400, "invalid_request_error"),
    (request("/v1/messages", host=""), 400, "invalid_request_error"),
    (request("/v1/messages", headers="".join(f"x-{i}: v\r\n" for i in range(refusals.MAX_HEADER_LINES))),
     431, "invalid_request_error"),
    (b"POST /v1/messages HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: gzip\r\n\r\n", 501, "api_error"),
    (request("/v1/messages", headers="transfer-encoding: chunked\r\n"), 400, "invalid_request_error"),  # and CL
    (request("/v1/messages", headers="content-type: text/plain\r\n"), 415, "invalid_request_error"),
    (request("/v1/messages", headers=""), 415, "invalid_request_error"),
    # A compressed body was read as the JSON itself ("not valid UTF-8"): said for what it is.
    (request("/v1/messages", headers="content-type: application/json\r\ncontent-encoding: gzip\r\n"), 415,
     "invalid_request_error"),
    (request("/v1/messages", b"x" * 2000), 413, "request_too_large"),
]


@on_each_loop
async def test_the_http_layers_refusals_on_v1_messages_are_anthropic_errors():
    async with gateway(max_body_bytes=1000) as app:
        for raw, status, error_type in MESSAGES_REFUSALS:
            anthropic_error(await exchange(app, raw), status, error_type)
        for raw, status, _ in MESSAGES_REFUSALS:  # the same on the OpenAI route: OpenAI's format
            raw = raw.replace(b"/v1/messages", b"/v1/chat/completions", 1)
            openai_error(await exchange(app, raw), status)


@on_each_loop
async def test_a_body_that_stops_arriving_is_answered_408_in_the_routes_format():
    async with gateway(body_timeout=0.1) as app:
        anthropic_error(await exchange(app, request("/v1/messages")[:-5]), 408, "invalid_request_error")
        openai_error(await exchange(app, request("/v1/embeddings")[:-5]), 408)


@on_each_loop
async def test_a_head_that_stops_arriving_is_answered_408_in_the_routes_format():
    async with gateway(head_timeout=0.1) as app:
        message = anthropic_error(await exchange(app, b"POST /v1/messages HTTP/1.1\r\nhost: gw\r\n"), 408,
                                  "invalid_request_error")
        assert message == refusals.HEAD_TIMEOUT


@on_each_loop
async def test_a_handlers_crash_is_a_500_in_the_routes_format():
    async def broken(request):
        raise RuntimeError("bug with sk-secret-123 inside")

    async with gateway() as app:
        app.routes["/v1/messages/count_tokens"] = dataclasses.replace(app.routes["/v1/messages/count_tokens"],
                                                                      handler=broken)
        reply = await exchange(app, request("/v1/messages/count_tokens"))
        # The gateway's own catch-all answers before the server's last-resort 500: the same shape, its own words.
        assert anthropic_error(reply, 500, "api_error") == errors.InternalError().message
        assert b"sk-secret" not in reply.body


@on_each_loop
async def test_refusals_before_the_path_is_known_are_openai_errors():
    async with gateway(max_connections=1) as app:
        assert "malformed" in openai_error(await exchange(app, b"NOT HTTP AT ALL\r\n\r\n"), 400)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while app.server.connections:  # that one is gone once its close arrives
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        first = await Peer.open(app.server.port)
        await first.send(request("/v1/messages/count_tokens"))
        assert (await first.response()).status == 200
        assert openai_error(await exchange(app, request("/v1/messages")), 503, "api_error") == refusals.AT_CAPACITY
        first.close()


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json",
    " application/json ;charset=UTF-8",
])
@on_each_loop
async def test_json_routes_accept_every_spelling_of_json(content_type):
    async with gateway() as app:  # development mode: no key needed, and still no cross-site form post
        reply = await exchange(app, request("/v1/messages/count_tokens", headers=f"content-type: {content_type}\r\n"))
        assert reply.status == 200 and "input_tokens" in reply.json()


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx",
    "text/json", None,
])
@on_each_loop
async def test_json_routes_refuse_other_content_types_with_415(content_type):
    headers = f"content-type: {content_type}\r\n" if content_type is not None else ""
    async with gateway() as app:
        message = anthropic_error(await exchange(app, request("/v1/messages", headers=headers)), 415,
                                  "invalid_request_error")
        assert "application/json" in message
        openai_error(await exchange(app, request("/v1/chat/completions", headers=headers)), 415)


@on_each_loop
async def test_get_routes_need_no_content_type():
    async with gateway() as app:
        peer = await Peer.open(app.server.port)
        await peer.send(b"GET /v1/models HTTP/1.1\r\nhost: gw\r\n\r\n")
        reply = await peer.response()
        assert reply.status == 200 and orjson.loads(reply.body)["data"][0]["id"] == "chat"
        peer.close()
