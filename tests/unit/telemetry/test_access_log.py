"""The access log's batched lines: one per request, in the order the requests ended, named and encoded off the
request path, written when BATCH_LINES wait (at the loop's next turn), every FLUSH_INTERVAL, and at close."""

from __future__ import annotations

import asyncio

import orjson

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.telemetry import access_log
from skyrelay.telemetry.access_log import AccessLog

CONFIG = {"model_groups": {"chat": {"deployments": [
    {"name": n, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9"} for n in ("a", "b")]}}}
HOSTILE = 'x"},{"time":1}\n{"time":'  # a name that looks like the batch's own record boundary


def answered(number: int, *, fail_first: bool = False) -> RequestContext:
    a, b = parse_config(CONFIG, env={}).deployments()
    ctx = RequestContext(f"req_{number}", 10.0, path="/v1/chat/completions")
    ctx.group, ctx.key_name, ctx.team = "chat", HOSTILE, None
    if fail_first:
        first = Attempt(a, 10.0, 10)
        first.finish(10.1, "failed", RuntimeError())
        ctx.attempts.append(first)
    served = Attempt(b, 10.1, 10)
    served.finish(10.25, "ok")
    served.usage = ctx.usage = Usage(12, 3, 2)
    ctx.attempts.append(served)
    return ctx


class Unrouted:
    id, method, path = "req_u", "GET", "/v1/models"


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_lines_keep_their_order_fields_and_strings_whatever_they_hold(tmp_path):
    path = tmp_path / "access.jsonl"
    log = AccessLog(str(path), clock=lambda: 20.0)
    for number in range(5):
        log.request(answered(number, fail_first=number == 2), 200, 10.5, 0.00123 if number else 0.0)
    log.unrouted(Unrouted(), 401)
    assert path.read_bytes() == b""  # nothing encoded nor written on the request path
    log.close()
    got = lines(path)
    assert [line["request_id"] for line in got] == ["req_0", "req_1", "req_2", "req_3", "req_4", "req_u"]
    first = got[1]
    assert list(first) == ["time", "request_id", "method", "path", "status", "key", "team", "model_group",
                           "deployment", "vendor", "attempts", "tried", "hedged", "result", "error", "latency_ms",
                           "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "cost_usd"]
    assert first["key"] == HOSTILE and first["deployment"] == "b" and first["result"] == "ok"
    assert first["latency_ms"] == 500.0 and first["cost_usd"] == 0.00123 and first["cached_tokens"] == 2
    assert got[0]["cost_usd"] is None and got[2]["tried"] == ["a", "b"] and got[2]["attempts"] == 2
    assert abs(first["time"] - (got[-1]["time"] - 9.5)) < 0.002  # the request's end, in Unix seconds
    assert got[-1] == {"time": got[-1]["time"], "request_id": "req_u", "method": "GET", "path": "/v1/models",
                       "status": 401, "model_group": None, "attempts": 0}


def test_a_full_batch_is_written_at_the_loops_next_turn(tmp_path, monkeypatch):
    monkeypatch.setattr(access_log, "BATCH_LINES", 3)
    path = tmp_path / "access.jsonl"

    async def run() -> None:
        log = AccessLog(str(path))
        log.start()
        for number in range(4):
            log.request(answered(number), 200, 10.5, 0.0)
        assert path.read_bytes() == b""
        await asyncio.sleep(0)  # the batch's flush writes every line waiting by then
        assert [line["request_id"] for line in lines(path)] == ["req_0", "req_1", "req_2", "req_3"]
        log.request(answered(4), 200, 10.5, 0.0)
        log.close()
        assert len(lines(path)) == 5

    asyncio.run(run())


def test_a_line_json_cannot_hold_loses_itself_not_its_batch(tmp_path):
    path = tmp_path / "access.jsonl"
    log = AccessLog(str(path), clock=lambda: 20.0)
    log.request(answered(0), 200, 10.5, 0.0)
    bad = answered(1)
    bad.key_name = "bad\ud800name"  # a lone surrogate: no UTF-8 for it
    log.request(bad, 200, 10.5, 0.0)
    log.request(answered(2), 200, 10.5, 0.0)
    log.close()
    assert [line["request_id"] for line in lines(path)] == ["req_0", "req_2"]
