"""The access log's exact bytes: the encoder writes each line itself (pre-encoded key fragments, cached names), so
these pin what it must produce, byte for byte, as orjson would encode the documented record."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import orjson

from skyrelay.canonical import Usage
from skyrelay.context import Attempt
from skyrelay.telemetry.access_log import encode

OFFSET = 1_764_585_600.0  # the log's clock to Unix seconds
HOSTILE = 'k"},{"time":1}\n{"time":\\'  # a name that looks like the batch's own record boundary


def attempt(name: str, status: str, error: BaseException | None = None, vendor: str = "azure") -> Attempt:
    tried = Attempt(SimpleNamespace(name=name, vendor=vendor, region=None), 10.0, 10)
    tried.finish(10.5, status, error)
    return tried


def routed(attempts, *, request_id="req_9f3c1a2b7e1", status=200, key="notebook", team="research", hedged=False,
           error=None, first_output=None, usage=Usage(1203, 88, 1024), cost=0.00213, path="/v1/chat/completions"):
    return (10.5234567, request_id, path, status, key, team, "chat", attempts, hedged, error, 9.69, first_output,
            usage, cost)


ROWS = [
    routed([attempt("east", "ok")]),
    routed([attempt("west", "failed", RuntimeError()), attempt("east", "ok")], first_output=9.9, cost=5e-06,
           key=None, team=None),
    routed([attempt("west", "cancelled"), attempt("east", "ok", vendor="bedrock")], hedged=True, cost=6.24e-05),
    routed([attempt("west", "failed", TimeoutError())], status=502, usage=None, cost=0.0,
           error=type("UpstreamUnavailable", (Exception,), {})),
    routed([attempt("west", "abandoned")], status=499, usage=None, cost=0.0, error=asyncio.CancelledError),
    routed([attempt("east", "failed", ConnectionResetError())], first_output=9.7, cost=0.0001),
    routed([attempt("west", "cancelled")], status=502, usage=None, cost=0.0),
    routed([attempt("west", "refused")], status=503, usage=None, cost=0.0, team=None),
    routed([attempt("é東", "ok", vendor="openai")], request_id='client-id "7"\t\\', key=HOSTILE, team="研究",
           cost=123.456789015, usage=Usage(0, 0, 0)),
    (11.0004, "req_u", "GET", "/v1/models", 401),
    (11.25, "req u\n", "POST", '/v1/"odd"\x7f\u2028', 404),
]

EXPECTED = (
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":200,"key":"notebook","team":"research","model_group":"chat","deployment":"east","vendor":"azure","attempts":1,"tried":null,"hedged":false,"result":"ok","error":null,"latency_ms":833.45,"ttft_ms":null,"input_tokens":1203,"output_tokens":88,"cached_tokens":1024,"cost_usd":0.00213}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":200,"key":null,"team":null,"model_group":"chat","deployment":"east","vendor":"azure","attempts":2,"tried":["west","east"],"hedged":false,"result":"ok","error":null,"latency_ms":833.45,"ttft_ms":210.0,"input_tokens":1203,"output_tokens":88,"cached_tokens":1024,"cost_usd":5e-6}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":200,"key":"notebook","team":"research","model_group":"chat","deployment":"east","vendor":"bedrock","attempts":2,"tried":["west","east"],"hedged":true,"result":"ok","error":null,"latency_ms":833.45,"ttft_ms":null,"input_tokens":1203,"output_tokens":88,"cached_tokens":1024,"cost_usd":0.0000624}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":502,"key":"notebook","team":"research","model_group":"chat","deployment":null,"vendor":null,"attempts":1,"tried":null,"hedged":false,"result":"error","error":"UpstreamUnavailable","latency_ms":833.45,"ttft_ms":null,"input_tokens":null,"output_tokens":null,"cached_tokens":null,"cost_usd":null}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":499,"key":"notebook","team":"research","model_group":"chat","deployment":null,"vendor":null,"attempts":1,"tried":null,"hedged":false,"result":"abandoned","error":"CancelledError","latency_ms":833.45,"ttft_ms":null,"input_tokens":null,"output_tokens":null,"cached_tokens":null,"cost_usd":null}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":200,"key":"notebook","team":"research","model_group":"chat","deployment":null,"vendor":null,"attempts":1,"tried":null,"hedged":false,"result":"broken","error":"ConnectionResetError","latency_ms":833.45,"ttft_ms":9.99,"input_tokens":1203,"output_tokens":88,"cached_tokens":1024,"cost_usd":0.0001}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":502,"key":"notebook","team":"research","model_group":"chat","deployment":null,"vendor":null,"attempts":1,"tried":null,"hedged":false,"result":"error","error":null,"latency_ms":833.45,"ttft_ms":null,"input_tokens":null,"output_tokens":null,"cached_tokens":null,"cost_usd":null}\n'
    b'{"time":1764585610.523,"request_id":"req_9f3c1a2b7e1","method":"POST","path":"/v1/chat/completions","status":503,"key":"notebook","team":null,"model_group":"chat","deployment":null,"vendor":null,"attempts":1,"tried":null,"hedged":false,"result":"error","error":null,"latency_ms":833.45,"ttft_ms":null,"input_tokens":null,"output_tokens":null,"cached_tokens":null,"cost_usd":null}\n'
    b'{"time":1764585610.523,"request_id":"client-id \\"7\\"\\t\\\\","method":"POST","path":"/v1/chat/completions","status":200,"key":"k\\"},{\\"time\\":1}\\n{\\"time\\":\\\\","team":"\xe7\xa0\x94\xe7\xa9\xb6","model_group":"chat","deployment":"\xc3\xa9\xe6\x9d\xb1","vendor":"openai","attempts":1,"tried":null,"hedged":false,"result":"ok","error":null,"latency_ms":833.45,"ttft_ms":null,"input_tokens":0,"output_tokens":0,"cached_tokens":0,"cost_usd":123.45678902}\n'
    b'{"time":1764585611.0,"request_id":"req_u","method":"GET","path":"/v1/models","status":401,"model_group":null,"attempts":0}\n'
    b'{"time":1764585611.25,"request_id":"req u\\n","method":"POST","path":"/v1/\\"odd\\"\x7f\xe2\x80\xa8","status":404,"model_group":null,"attempts":0}\n'
)


def test_lines_are_byte_for_byte_what_orjson_makes_of_the_documented_record():
    assert encode(ROWS, OFFSET) == EXPECTED


def test_every_line_is_orjsons_own_encoding_of_what_it_holds():
    for line in encode(ROWS * 2, OFFSET).splitlines():
        assert orjson.dumps(orjson.loads(line)) == line


def test_numbers_keep_their_rounding_and_orjsons_notation():
    rng = random.Random(10)
    for _ in range(20_000):
        cost = rng.random() * 10 ** rng.uniform(-9, 4)
        latency = rng.random() * 10 ** rng.uniform(-6, 4)
        end = rng.random() * 10 ** rng.uniform(0, 7)
        rows = [routed([attempt("east", "ok")], cost=cost, first_output=9.69 + latency / 2)]
        rows[0] = (9.69 + latency,) + rows[0][1:]
        rows.append((end, "req_u", "GET", "/v1/models", 401))
        routed_line, unrouted_line = (orjson.loads(line) for line in encode(rows, OFFSET).splitlines())
        assert orjson.dumps(routed_line) == encode(rows[:1], OFFSET)[:-1]
        assert routed_line["cost_usd"] == int(cost * 1e8 + 0.5) / 1e8
        assert routed_line["latency_ms"] == int(latency * 100_000) / 100
        assert routed_line["ttft_ms"] == int(((9.69 + latency / 2) - 9.69) * 100_000) / 100
        assert unrouted_line["time"] == int((end + OFFSET) * 1000) / 1000


def test_lines_are_the_same_bytes_with_their_fragments_cached_or_not(monkeypatch):
    from skyrelay.telemetry import access_log

    warm = encode(ROWS * 2, OFFSET)  # the second copy of each line is written from the cached fragments
    assert warm == EXPECTED * 2
    monkeypatch.setattr(access_log, "_JSON_LIMIT", 0)  # the caches are full: every fragment is encoded afresh
    monkeypatch.setattr(access_log, "_ANSWERED", {})
    monkeypatch.setattr(access_log, "_WHERE", {})
    monkeypatch.setattr(access_log, "_JSON", {None: "null"})
    assert encode(ROWS, OFFSET) == EXPECTED
    # the same deployment's name under another vendor (after a reload) is not the cached line's
    moved = [attempt("east", "ok", vendor="gcp")]
    assert b'"deployment":"east","vendor":"gcp"' in encode([ROWS[0], routed(moved)], OFFSET).splitlines()[1]


def test_a_batch_splits_into_its_lines_whatever_the_names_hold():
    odd = ',\n,{"time":1},\n,'  # the batch's own line separator, and a line's start, inside names
    rows = [routed([attempt(odd, "ok", vendor=odd)], request_id=odd, key=odd, team=odd, path=odd),
            routed([attempt(odd, "failed", RuntimeError()), attempt("east", "ok")], key=odd),
            (11.0, odd, odd, odd, 404)] * 3
    lines = encode(rows, OFFSET).splitlines()
    assert len(lines) == len(rows)
    assert [orjson.loads(line)["request_id"] for line in lines] == [odd, "req_9f3c1a2b7e1", odd] * 3
    assert all(orjson.dumps(orjson.loads(line)) == line for line in lines)
    assert encode([], OFFSET) == b""
