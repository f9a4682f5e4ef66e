"""What the lean HTTP server refuses before any handler runs, over real loopback sockets: slow heads and bodies
(408), too many connections (503), too many headers (431), versions (505) and transfer codings (501) it does not
serve, a missing or doubled Host (400), and the application's hook that renders all of them.

Each test runs under asyncio and uvloop (tests/support/loops.py), raw bytes in, exact status and body out.
"""

from __future__ import annotations

import asyncio

import pytest

from skyrelay.net import refusals
from skyrelay.net.server import Request, Response
from tests.support.http_peer import Peer, echo, get, post, serving
from tests.support.loops import on_each_loop


class Recorder:
    """An `echo` handler that remembers what reached it."""

    def __init__(self):
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return await echo(request)


async def refused(peer: Peer, status: int, message: str | None = None):
    """The next answer is `status` with the default (OpenAI-shaped) error JSON, then the server closes."""
    reply = await peer.response()
    assert reply.status == status and reply.headers["connection"] == "close"
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("api_error" if status in (500, 503) else "invalid_request_error")
    if message is not None:
        assert error["message"] == message
    assert await peer.at_eof() == b""
    return error


# --- timeouts ------------------------------------------------------------------------------------------------------


@on_each_loop
async def test_a_head_that_stops_arriving_gets_408():
    handler = Recorder()
    async with serving(handler, head_timeout=0.1) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"GET / HTTP/1.1\r\nhost: t\r\n")  # a stalled (or slowloris) client
        await refused(peer, 408, refusals.HEAD_TIMEOUT)
    assert handler.seen == []


@on_each_loop
async def test_a_head_sent_slowly_a_byte_at_a_time_is_cut_at_the_head_timeout():
    async def trickle(peer):
        for byte in b"GET / HTTP/1.1\r\nhost: t\r\nx-a: " + b"a" * 100:  # never idle, never done
            await peer.send(bytes([byte]))  # still read (and dropped) after the answer: no RST eats it
            await asyncio.sleep(0.01)

    async with serving(echo, head_timeout=0.1) as server:
        peer = await Peer.open(server.port)
        sender = asyncio.create_task(trickle(peer))
        await refused(peer, 408, refusals.HEAD_TIMEOUT)
        assert not sender.done()  # cut while the head was still arriving
        sender.cancel()


@on_each_loop
async def test_a_new_connection_that_sends_nothing_is_closed_after_the_head_timeout():
    async with serving(echo, head_timeout=0.1) as server:  # keep-alive stays 75 s
        peer = await Peer.open(server.port)
        assert await peer.at_eof() == b""  # nothing was asked: nothing is answered


@on_each_loop
async def test_a_body_that_stops_arriving_gets_408():
    handler = Recorder()
    async with serving(handler, body_timeout=0.1) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\n{\"a\"")
        await refused(peer, 408, refusals.BODY_TIMEOUT)
    assert handler.seen == []


@on_each_loop
async def test_a_slow_but_steady_body_is_not_cut():
    async with serving(echo, body_timeout=0.2) as server:
        peer = await Peer.open(server.port)
        body = b'{"a":1}'
        await peer.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body))
        for byte in body:  # never idle for the timeout, but in all longer than it
            await peer.send(bytes([byte]))
            await asyncio.sleep(0.04)
        reply = await peer.response()
        assert reply.status == 200 and reply.json()["body"] == body.decode()
        peer.close()


@on_each_loop
async def test_an_idle_keep_alive_connection_lives_past_the_head_timeout():
    """Between requests the keep-alive timeout applies, not the head timeout."""
    async with serving(echo, head_timeout=0.05, body_timeout=0.05, keepalive_timeout=5.0) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/1"))
        assert (await peer.response()).status == 200
        await asyncio.sleep(0.3)
        await peer.send(get("/2"))
        reply = await peer.response()
        assert reply.status == 200 and reply.json()["path"] == "/2"
        peer.close()


@on_each_loop
async def test_a_body_waiting_for_its_100_continue_is_not_timed_out():
    """A client waiting for `100 Continue` behind a slow answer sends nothing: its fault is ours, not its own."""
    async def slow_first(request):
        if request.path == "/slow":
            await asyncio.sleep(0.4)
        return await echo(request)

    async with serving(slow_first, body_timeout=0.1) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/slow") + b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n"
                        b"expect: 100-continue\r\n\r\n")
        assert (await peer.response()).json()["path"] == "/slow"
        assert await peer.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await peer.send(b"{}")
        reply = await peer.response()
        assert (reply.status, reply.json()["body"]) == (200, "{}")
        peer.close()


# --- connections ---------------------------------------------------------------------------------------------------


@on_each_loop
async def test_connections_above_the_cap_get_503_and_are_closed():
    async with serving(echo, max_connections=2) as server:
        first, second = await Peer.open(server.port), await Peer.open(server.port)
        for peer in (first, second):
            await peer.send(get())
            assert (await peer.response()).status == 200
        third = await Peer.open(server.port)
        await third.send(get())
        await refused(third, 503, refusals.AT_CAPACITY)
        assert len(server.connections) == 2
        first.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while len(server.connections) > 1:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        fourth = await Peer.open(server.port)  # a slot is free again
        await fourth.send(get())
        assert (await fourth.response()).status == 200
        second.close()
        fourth.close()


# --- the head ------------------------------------------------------------------------------------------------------


@on_each_loop
async def test_too_many_header_lines_get_431():
    handler = Recorder()
    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        lines = "".join(f"x-h{i}: v\r\n" for i in range(refusals.MAX_HEADER_LINES - 1))  # with host: the cap
        await peer.send(get(headers=lines))
        assert (await peer.response()).status == 200
        await peer.send(get(headers=lines + "x-one-more: v\r\n"))
        await refused(peer, 431, refusals.TOO_MANY_HEADERS)
    assert len(handler.seen) == 1


@on_each_loop
async def test_a_flood_of_empty_repeated_headers_gets_431():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(get(headers="x-a:\r\n" * 65_000))
        await refused(peer, 431, refusals.TOO_MANY_HEADERS)


@on_each_loop
async def test_repeated_headers_are_joined_in_order():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(get(headers="".join(f"x-tag: {i}\r\n" for i in range(50)) + "x-other: o\r\nX-Tag: last\r\n"))
        headers = (await peer.response()).json()["headers"]
        assert headers["x-tag"] == ", ".join([*map(str, range(50)), "last"]) and headers["x-other"] == "o"
        peer.close()


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
    b"GET / HTTP/1.0\r\nhost: a\r\nHost: a\r\n\r\n",
], ids=["missing", "two", "two-in-1.0"])
@on_each_loop
async def test_host_missing_or_doubled_gets_400(head):
    handler = Recorder()
    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(head)
        await refused(peer, 400, refusals.HOST_REQUIRED)
    assert handler.seen == []


@on_each_loop
async def test_http_1_0_needs_no_host():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"GET /old HTTP/1.0\r\n\r\n")
        assert (await peer.response()).status == 200


@pytest.mark.parametrize("request_line", [
    b"GET / HTTP/2.0\r\nhost: t\r\n\r\n",
    b"GET / HTTP/0.9\r\nhost: t\r\n\r\n",
    b"GET / HTTP/1.2\r\nhost: t\r\n\r\n",
    b"GET / HTTP/3.0\r\nhost: t\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 with prior knowledge
], ids=["2.0", "0.9", "1.2", "3.0", "h2-preface"])
@on_each_loop
async def test_http_versions_other_than_1_0_and_1_1_get_505(request_line):
    handler = Recorder()
    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(request_line)
        await refused(peer, 505, refusals.UNSUPPORTED_VERSION)
    assert handler.seen == []


@pytest.mark.parametrize("encoding", ["gzip", "identity", "gzip, chunked", "chunked, gzip", "deflate"])
@on_each_loop
async def test_transfer_encodings_other_than_chunked_get_501(encoding):
    handler = Recorder()
    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(f"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: {encoding}\r\n\r\n"
                        "2\r\n{}\r\n0\r\n\r\n".encode())
        reply = await peer.response()
        assert reply.status == 501 and reply.json()["error"]["type"] == "invalid_request_error"
        assert "Transfer-Encoding" in reply.json()["error"]["message"]
        assert await peer.at_eof() == b""
    assert handler.seen == []


@pytest.mark.parametrize("headers", [
    "transfer-encoding: chunked\r\ncontent-length: 4\r\n",
    "content-length: 4\r\ntransfer-encoding: chunked\r\n",
], ids=["te-then-cl", "cl-then-te"])
@on_each_loop
async def test_content_length_with_transfer_encoding_is_refused_as_smuggling(headers):
    handler = Recorder()
    async with serving(handler) as server:
        peer = await Peer.open(server.port)
        await peer.send(f"POST / HTTP/1.1\r\nhost: t\r\n{headers}\r\n2\r\n{{}}\r\n0\r\n\r\n".encode())
        await refused(peer, 400, refusals.MALFORMED)
    assert handler.seen == []


@on_each_loop
async def test_chunked_in_any_case_is_accepted():
    async with serving(echo) as server:
        peer = await Peer.open(server.port)
        await peer.send(b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        reply = await peer.response()
        assert (reply.status, reply.json()["body"]) == (200, "{}")
        peer.close()


# --- the application renders the refusals --------------------------------------------------------------------------


@on_each_loop
async def test_refusals_are_rendered_by_the_applications_hook_with_the_path_when_known():
    calls = []

    def reply(status, message, path):
        calls.append((status, path))
        return Response(status, f"{status} {path}".encode(), [("content-type", "text/plain"), ("x-mine", "1")])

    async def broken(request):
        raise ValueError("bug")

    async with serving(broken, error_reply=reply, head_timeout=0.1) as server:
        for raw, status, path in [
            (b"GET /v1/messages HTTP/2.0\r\nhost: t\r\n\r\n", 505, "/v1/messages"),
            (b"GET /v1/messages HTTP/1.1\r\n\r\n", 400, "/v1/messages"),
            (b"NOT HTTP\r\n\r\n", 400, None),
            (b"GET /v1/slow HTTP/1.1\r\nhost: t\r\n", 408, "/v1/slow"),
            (get("/v1/bug"), 500, "/v1/bug"),
        ]:
            peer = await Peer.open(server.port)
            await peer.send(raw)
            answer = await peer.response()
            assert (answer.status, answer.body, answer.headers["x-mine"]) == (status, f"{status} {path}".encode(), "1")
            peer.close()
    assert calls == [(505, "/v1/messages"), (400, "/v1/messages"), (400, None), (408, "/v1/slow"), (500, "/v1/bug")]


@on_each_loop
async def test_a_refusal_behind_a_pipelined_request_waits_for_its_answer():
    async def slow(request):
        await asyncio.sleep(0.05)
        return Response(200, b"first")

    async with serving(slow) as server:
        peer = await Peer.open(server.port)
        await peer.send(get("/ok") + b"GET / HTTP/2.0\r\nhost: t\r\n\r\n")
        first = await peer.response()
        assert (first.status, first.body) == (200, b"first")
        await refused(peer, 505, refusals.UNSUPPORTED_VERSION)


def test_post_helper_sends_a_host():  # the helpers every test here builds on
    assert b"\r\nhost: test\r\n" in post(b"{}") and b"\r\nhost: test\r\n" in get()
