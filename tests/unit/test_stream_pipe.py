"""A pass-through stream's plain events piped from the upstream's socket to the client's (CommittedStream.pipe):
the client gets exactly the bytes it gets when every event goes through the serving task, however the upstream's
reads fall and whenever the client's socket fills; and what the gateway reads (usage, the end) still reaches it.
A translated stream's text deltas (OpenAI in, Anthropic out) are piped the same way, rendered on the way."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest

from skyrelay.config import parse_config
from skyrelay.net.client_connection import PooledConnection
from skyrelay.net.server import HttpServer
from skyrelay.net.server_connection import ServerConnection
from skyrelay.emulator.protocols.bedrock_eventstream import event as frame
from skyrelay.providers.anthropic.passthrough_stream import PassThroughStream
from skyrelay.providers.bedrock.stream import ConverseStreamDecoder
from skyrelay.providers.openai_passthrough import PassThroughChunks
from skyrelay.providers.sse import SSEChunks
from skyrelay.server import Gateway

KEY = "sk-pipe"


def _config(kind: str) -> dict:
    deployment = {"name": "up", "kind": kind, "base_url": "http://127.0.0.1:9/v1", "model": "m",
                  "price": {"input_per_mtok": 1, "output_per_mtok": 2}}
    if kind == "bedrock":
        deployment.update(base_url="http://127.0.0.1:9", region="us-east-1", aws_access_key_id="AKIDTEST",
                          aws_secret_access_key="test-secret")
    return {"server": {"master_key": KEY}, "model_groups": {"chat": {"deployments": [deployment]}},
            "ledger": {"enabled": False}}


def _event(delta: dict, finish=None, usage=None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": usage}
    return b"data: " + orjson.dumps(body) + b"\n\n"


EVENTS = [_event({"role": "assistant", "content": ""}), *(_event({"content": f"w{i} "}) for i in range(8)),
          _event({}, "stop"), _event({}, usage={"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}),
          b"data: [DONE]\n\n"]


def _message_event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


MESSAGE_EVENTS = [
    _message_event("message_start", {"message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
    _message_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    *(_message_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f"w{i} "}})
      for i in range(8)),
    _message_event("ping", {}),
    _message_event("content_block_stop", {"index": 0}),
    _message_event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": 8}}),
    _message_event("message_stop", {}),
]


class _Transport(asyncio.Transport):
    def __init__(self, on_write):
        super().__init__()
        self.on_write = on_write
        self.closing = False

    def write(self, data):
        self.on_write(data)

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    abort = close

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def _chunked(reads: list[bytes], kind: bytes = b"text/event-stream") -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head, *(b"%x\r\n%b\r\n" % (len(r), r) for r in reads), b"0\r\n\r\n"]


def _body(raw: bytes) -> bytes:
    """The de-chunked body of one chunked HTTP response."""
    rest = raw.split(b"\r\n\r\n", 1)[1]
    out = b""
    while True:
        size, rest = rest.split(b"\r\n", 1)
        n = int(size, 16)
        if n == 0:
            return out
        out, rest = out + rest[:n], rest[n + 2:]


async def _serve(reads: list[bytes], on_read=None, include_usage: bool = False, anthropic: bool = False,
                 translated: str | None = None) -> tuple[bytes, int]:
    """One streamed request through the gateway (chat completions to an OpenAI deployment, Messages to an
    Anthropic one, or chat completions to the `translated` kind), the upstream answering with `reads` a loop turn
    apart (`on_read(i, server_connection)` runs before read i); the client's body and how many upstream reads
    were piped."""
    gateway = Gateway(parse_config(_config(translated or ("anthropic" if anthropic else "openai"))))
    provider = gateway.providers["up"]
    loop = asyncio.get_running_loop()
    answer = _chunked(reads, b"application/vnd.amazon.eventstream\r\nx-amzn-requestid: req-1"
                      if translated == "bedrock" else b"text/event-stream")
    server = HttpServer(gateway.handle, max_body_bytes=1 << 20, keepalive_timeout=60, error_reply=gateway.http_error)
    client = ServerConnection(server)
    piped = []

    async def connect():
        conn = PooledConnection(provider.http)

        def deliver(i):
            if on_read is not None:
                on_read(i, client)
            conn.data_received(answer[i])
            if i + 1 < len(answer):
                loop.call_soon(deliver, i + 1)

        conn.connection_made(_Transport(lambda data: loop.call_soon(deliver, 0)))
        return conn

    provider.http._connect = connect
    received, done = [], loop.create_future()

    def on_write(data: bytes):
        received.append(data)
        if b"0\r\n\r\n" in data and not done.done():
            done.set_result(None)

    client.connection_made(_Transport(on_write))
    decoder, factory = ((ConverseStreamDecoder if translated == "bedrock" else SSEChunks), "translated") \
        if translated else (PassThroughStream if anthropic else PassThroughChunks, "sink")
    make_sink = getattr(decoder, factory)

    def counting_sink(self, write, *render):
        def counted(data):
            took = write(data)
            piped.append(took)
            return took
        return make_sink(self, counted, *render)

    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    if anthropic:
        body["max_tokens"] = 50
    payload = orjson.dumps(body)
    path = b"/v1/messages" if anthropic else b"/v1/chat/completions"
    request = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    setattr(decoder, factory, counting_sink)
    try:
        client.data_received(request)
        await asyncio.wait_for(done, 5)
    finally:
        setattr(decoder, factory, make_sink)
        await gateway.close(0)
    raw = b"".join(received)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
    # A translated chunk's `created` is the second its stream was decoded: runs compared may straddle one.
    return re.sub(rb'"created":\d+', b'"created":0', _body(raw)) if translated else _body(raw), sum(piped)


def _paused_between(pause: int, resume: int):
    """An on_read for _serve: the client stops reading before upstream read `pause` (the task must take over and
    wait for the drain) and reads again before read `resume`."""
    def on_read(i, conn):
        if i == pause:
            conn.pause_writing()
        elif i == resume:
            conn.resume_writing()
            if conn.drain_waiter is not None and not conn.drain_waiter.done():
                conn.drain_waiter.set_result(None)
    return on_read


def _as_one_read() -> list[bytes]:
    return [b"".join(EVENTS)]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_trickled_stream_is_piped_and_reaches_the_client_byte_for_byte(include_usage):
    whole, piped_whole = await _serve(_as_one_read(), include_usage=include_usage)
    trickled, piped = await _serve(EVENTS, include_usage=include_usage)
    assert piped_whole == 0  # one read: the task takes it all, nothing is left to pipe
    assert piped >= 7  # the content events after the first output went straight through
    assert trickled == whole
    assert (b'"usage":{' in trickled) is include_usage  # the usage event was read, not piped, and kept or dropped
    assert trickled.endswith(b"data: [DONE]\n\n")


async def test_events_split_across_reads_are_left_to_the_task():
    whole, _ = await _serve(_as_one_read())
    stream = b"".join(EVENTS)
    reads = [stream[i:i + 37] for i in range(0, len(stream), 37)]  # events cut anywhere
    split, _ = await _serve(reads)
    assert split == whole


async def test_a_full_client_socket_stops_the_pipe_and_the_order_holds():
    whole, _ = await _serve(_as_one_read())
    paused, piped = await _serve(EVENTS, _paused_between(4, 7))
    assert paused == whole
    assert piped >= 2  # piped before the pause and after the drain


async def test_an_anthropic_pass_through_is_piped_and_reaches_the_client_byte_for_byte():
    whole, piped_whole = await _serve([b"".join(MESSAGE_EVENTS)], anthropic=True)
    trickled, piped = await _serve(MESSAGE_EVENTS, anthropic=True)
    assert piped_whole == 0
    assert piped >= 9  # the deltas after the first, the ping and the block's stop
    assert trickled == whole == b"".join(MESSAGE_EVENTS)


async def test_an_anthropic_stream_cut_anywhere_or_held_back_keeps_its_bytes():
    stream = b"".join(MESSAGE_EVENTS)
    split, _ = await _serve([stream[i:i + 41] for i in range(0, len(stream), 41)], anthropic=True)
    paused, _ = await _serve(MESSAGE_EVENTS, _paused_between(5, 8), anthropic=True)
    assert split == paused == stream


TOOL_EVENTS = [  # after the text: a tool call, whose events are not plain text (read by the task, in order)
    *MESSAGE_EVENTS[:-3],
    _message_event("content_block_stop", {"index": 0}),
    _message_event("content_block_start", {"index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
    *(_message_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})
      for p in ('{"q": ', '"foxes"}')),
    _message_event("content_block_stop", {"index": 1}),
    _message_event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                     "usage": {"output_tokens": 12}}),
    _message_event("message_stop", {}),
]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_translated_stream_is_piped_rendered_and_reaches_the_client_byte_for_byte(include_usage):
    whole, piped_whole = await _serve([b"".join(MESSAGE_EVENTS)], include_usage=include_usage, translated="anthropic")
    trickled, piped = await _serve(MESSAGE_EVENTS, include_usage=include_usage, translated="anthropic")
    assert piped_whole == 0
    assert piped >= 7  # the text deltas after the first output
    assert trickled == whole
    events = [e for e in trickled.split(b"\n\n") if e.startswith(b"data: {")]
    chunks = [orjson.loads(e[6:]) for e in events]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == \
        "".join(f"w{i} " for i in range(8))
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert any(not c["choices"] and c["usage"] for c in chunks) is include_usage
    assert trickled.endswith(b"data: [DONE]\n\n")


async def test_a_translated_stream_cut_anywhere_held_back_or_with_a_tool_call_keeps_its_bytes():
    stream = b"".join(TOOL_EVENTS)
    whole, _ = await _serve([stream], translated="anthropic")
    split, _ = await _serve([stream[i:i + 41] for i in range(0, len(stream), 41)], translated="anthropic")
    paused, _ = await _serve(TOOL_EVENTS, _paused_between(5, 8), translated="anthropic")
    trickled, piped = await _serve(TOOL_EVENTS, translated="anthropic")
    assert piped >= 7
    assert split == paused == trickled == whole
    assert b'"tool_calls":[{"index":0,"id":"toolu_1"' in whole and b'"finish_reason":"tool_calls"' in whole


def _frame(name: str, data: dict) -> bytes:
    return frame(name, orjson.dumps(data))


CONVERSE_FRAMES = [
    _frame("messageStart", {"role": "assistant"}),
    *(_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"w{i} "}}) for i in range(8)),
    _frame("contentBlockStop", {"contentBlockIndex": 0}),
    _frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
    *(_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": p}}})
      for p in ('{"q": ', '"foxes"}')),
    _frame("contentBlockStop", {"contentBlockIndex": 1}),
    _frame("messageStop", {"stopReason": "tool_use"}),
    _frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 12, "totalTokens": 15}}),
]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_bedrock_stream_is_piped_rendered_and_keeps_its_bytes(include_usage):
    stream = b"".join(CONVERSE_FRAMES)
    whole, piped_whole = await _serve([stream], include_usage=include_usage, translated="bedrock")
    trickled, piped = await _serve(CONVERSE_FRAMES, include_usage=include_usage, translated="bedrock")
    split, _ = await _serve([stream[i:i + 29] for i in range(0, len(stream), 29)], include_usage=include_usage,
                            translated="bedrock")
    paused, _ = await _serve(CONVERSE_FRAMES, _paused_between(4, 7), include_usage=include_usage, translated="bedrock")
    assert piped_whole == 0
    assert piped >= 6  # the text deltas after the first output
    assert trickled == whole == split == paused
    chunks = [orjson.loads(e[6:]) for e in whole.split(b"\n\n") if e.startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "".join(f"w{i} " for i in range(8))
    assert b'"tool_calls":[{"index":0,"id":"t1"' in whole and b'"finish_reason":"tool_calls"' in whole
    assert any(not c["choices"] and c["usage"] for c in chunks) is include_usage
