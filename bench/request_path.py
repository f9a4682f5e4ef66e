"""The gateway's whole request path in one process, with no sockets: bytes in -> ServerConnection -> Gateway ->
dispatch -> provider -> pooled client -> a canned upstream answer -> bytes out. Not a test.

Both ends are fake transports: the client's request is fed to the server connection's `data_received`, and the
upstream connection answers every request it is written with the static upstream's bytes (bench/static_upstream.py)
on the next loop turn. Everything between is the code `skyrelay serve` runs (under uvloop), so the figure is the
Python a request costs, without the kernel's share. The configuration is the one of `make bench`'s chat row: one
OpenAI deployment with a price, the master key, the ledger off, metrics on. `--realistic` takes bench/compare.py's
realistic configuration instead (300 keys in 10 teams with limits and budgets, quotas and a spill tier, the access
log, the ledger on SQLite in a temporary directory: its shipper thread's CPU is counted too), called with a declared
key. `--anthropic` / `--bedrock`: an Anthropic (bench/static_upstream.py's Message and its 23-event stream) or a
Bedrock deployment (bench/compare_upstreams.py's Converse answer and its 22 frames) behind the same OpenAI route:
the answer and the stream are translated.

With the ledger on (`--realistic`) read the figure as an upper bound: this loop never sleeps, so uvloop hands the
GIL over at each callback and the shipper thread, waiting for it, is woken each time (a convoy: ~2 voluntary
context switches per request on a 2-vCPU VM, the loop's own CPU 40-50 us per request higher there). A served
gateway sleeps in epoll between events and its shipper waits for nothing (0.03 switches per request at 32
connections on the same machine): `make bench` and bench/compare.py measure that.

Run:  PYTHONPATH=src .venv/bin/python bench/request_path.py [--stream] [--count 20000]     (us per request)
Instructions per request (deterministic on a loaded machine):
  .venv/bin/python bench/instructions.py -- .venv/bin/python bench/request_path.py --count {n} [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import uvloop

import static_upstream  # bench/static_upstream.py: the same completion and 20-chunk stream the wrk rows get
from skyrelay.config import parse_config
from skyrelay.net.client_connection import PooledConnection
from skyrelay.net.server import HttpServer
from skyrelay.net.server_connection import ServerConnection
from skyrelay.server import Gateway

KEY = "sk-bench"
REALISTIC_KEY = "sk-bench-key-7"  # bench/compare.py's caller: one of its 300 declared keys
CONFIG = {
    "server": {"master_key": KEY},
    "model_groups": {"chat": {"deployments": [{
        "name": "static", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini",
        "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}]}},
    "ledger": {"enabled": False},
}


def client_request(stream: bool, key: str = KEY) -> bytes:
    body = (b'{"model": "chat", "messages": [{"role": "user", "content": "Say something about foxes."}]'
            + (b', "stream": true}' if stream else b"}"))
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def _translated(deployment: dict) -> dict:
    return {"server": {"master_key": KEY}, "ledger": {"enabled": False}, "model_groups": {"chat": {"deployments": [{
        "name": "static", "base_url": "http://127.0.0.1:9",
        "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, **deployment}]}}}


# OpenAI in, another cloud out: the answer and the stream are translated.
ANTHROPIC = _translated({"kind": "anthropic", "model": "claude-bench", "api_key": "up"})
BEDROCK = _translated({"kind": "bedrock", "model": "amazon.nova-lite-v1:0", "region": "us-east-1",
                       "aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench-secret"})


def upstream_answer(stream: bool, config: dict = CONFIG) -> list[bytes]:
    """The upstream's answer as the reads that deliver it: a stream's head and then each event apart (as a paced
    stream arrives), a whole answer in one read."""
    if config is BEDROCK:
        import compare_upstreams  # noqa: PLC0415  (bench/compare_upstreams.py: its Converse answers)

        body, events = compare_upstreams.bedrock_answers()
        kind = b"application/vnd.amazon.eventstream" if stream else b"application/json"
    else:
        anthropic = config is ANTHROPIC
        body = static_upstream.MESSAGE if anthropic else static_upstream.COMPLETION
        events = static_upstream.MESSAGE_STREAM if anthropic else static_upstream.STREAM
        kind = b"text/event-stream" if stream else b"application/json"
    if stream:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ntransfer-encoding: chunked\r\n\r\n"
        return [head, *(b"%x\r\n%b\r\n" % (len(c), c) for c in events), b"0\r\n\r\n"]
    return [b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body]


class FakeTransport(asyncio.Transport):
    """Enough of a transport for both ends; `on_write` sees every write."""

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

    def can_write_eof(self):
        return False


def realistic_config(workdir: Path) -> dict:
    import compare  # noqa: PLC0415  (bench/compare.py: its realistic configuration, the one its table measures)

    config = compare.gateway_config(8000, 9, 9, True, workdir)
    config["logging"]["file"] = os.devnull
    return config


async def run(count: int, stream: bool, trickle: bool = False, config: dict = CONFIG) -> float:
    gateway = Gateway(parse_config(config))
    if gateway.ledger is not None:  # what Gateway.start does besides listening: the ledger's shipper, the
        gateway._start_ledger()  # governor's and the telemetry's background work
    gateway.governor.start()
    gateway.telemetry.start()
    provider = gateway.providers["static"]
    answer = upstream_answer(stream, config)
    loop = asyncio.get_running_loop()

    async def connect():  # the pool's one upstream connection, answering read by read, a loop turn apart
        conn = PooledConnection(provider.http)

        def deliver(reads):
            conn.data_received(reads[0])
            if len(reads) > 1:
                loop.call_soon(deliver, reads[1:] if trickle else [b"".join(reads[1:])])

        conn.connection_made(FakeTransport(lambda data: loop.call_soon(deliver, answer)))
        return conn

    provider.http._connect = connect
    server = HttpServer(gateway.handle, max_body_bytes=1 << 20, keepalive_timeout=60, error_reply=gateway.http_error)
    done: list[asyncio.Future] = []
    end = b"0\r\n\r\n" if stream else b"\r\n\r\n"  # a stream's last chunk; a whole answer is one write

    def answered(data: bytes):
        if not data.startswith(b"HTTP/1.1 200") and not done[0].done() and data.startswith(b"HTTP/"):
            raise SystemExit(f"the gateway answered: {data[:400]!r}")
        if end in data and not done[0].done():
            done[0].set_result(None)

    conn = ServerConnection(server)
    conn.connection_made(FakeTransport(answered))
    request = client_request(stream, KEY if config in (CONFIG, ANTHROPIC, BEDROCK) else REALISTIC_KEY)
    started = 0.0
    for i in range(count + 200):
        if i == 200:  # warmed up: the pool's connection made, every cache filled
            started = time.process_time()
        done[:] = [loop.create_future()]
        conn.data_received(request)
        await done[0]
    elapsed = time.process_time() - started
    await gateway.close(0)
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--stream", action="store_true", help="a 20-chunk stream instead of a whole answer")
    parser.add_argument("--trickle", action="store_true", help="the stream's events in reads of their own")
    parser.add_argument("--realistic", action="store_true", help="bench/compare.py's realistic configuration")
    parser.add_argument("--anthropic", action="store_true",
                        help="an Anthropic deployment behind the OpenAI route: the stream is translated")
    parser.add_argument("--bedrock", action="store_true", help="the same with a Bedrock deployment (Converse)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyrelay-request-path-") as workdir:
        config = (realistic_config(Path(workdir)) if args.realistic else ANTHROPIC if args.anthropic
                  else BEDROCK if args.bedrock else CONFIG)
        per = uvloop.run(run(args.count, args.stream or args.trickle, args.trickle, config))
    name = "trickled stream" if args.trickle else "stream" if args.stream else "chat"
    print(f"{name}: {per * 1e6:.1f} us of CPU per request")


if __name__ == "__main__":
    main()
