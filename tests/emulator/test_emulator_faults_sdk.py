"""Every fault kind as the openai SDK experiences it, runtime control, the admin API and timing."""

from __future__ import annotations

import asyncio
import time

import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

HI = [{"role": "user", "content": "hello"}]
MODEL = "gpt-4o-mini"


def api(cloud, **kw) -> AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="sk-test", **kw))


async def chat(cloud, **kw):
    return await api(cloud).chat.completions.create(model=MODEL, messages=HI, **kw)


async def test_status_faults_use_openai_error_bodies(openai_cloud):
    openai_cloud.set_faults([{"status": 500, "at": [1]}, {"status": 503, "at": [2], "message": "overloaded"},
                             {"status": 429, "at": [3], "retry_after": 2}])
    with pytest.raises(openai.InternalServerError) as info:
        await chat(openai_cloud)
    assert info.value.status_code == 500
    validate("ErrorResponse", {"error": info.value.body})
    with pytest.raises(openai.InternalServerError) as info:
        await chat(openai_cloud)
    assert info.value.status_code == 503 and info.value.message.endswith("overloaded")
    with pytest.raises(openai.RateLimitError) as info:
        await chat(openai_cloud)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    assert (await chat(openai_cloud)).choices[0].finish_reason == "stop"
    assert openai_cloud.stats["by_status"] == {"500": 1, "503": 1, "429": 1, "200": 1}
    assert openai_cloud.stats["faults"] == {"status_500": 1, "status_503": 1, "status_429": 1}


async def test_the_sdk_retries_after_retry_after(openai_cloud):
    openai_cloud.set_faults([{"status": 429, "at": [1], "retry_after": 0.05}])
    reply = await api(openai_cloud, max_retries=2).chat.completions.create(model=MODEL, messages=HI)
    assert reply.choices[0].message.content
    assert openai_cloud.stats["requests"] == 2


async def test_hang_until_the_client_gives_up(openai_cloud):
    openai_cloud.set_faults([{"kind": "hang", "times": 1}])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await api(openai_cloud, timeout=0.3).chat.completions.create(model=MODEL, messages=HI)
    assert 0.25 < time.monotonic() - started < 2
    for _ in range(50):  # the server notices the disconnect and cancels the hung handler
        if openai_cloud.stats["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert openai_cloud.stats["by_status"].get("client_gone") == 1
    assert (await chat(openai_cloud)).choices  # times: 1 -> the next request is served


async def test_hang_for_some_seconds_then_answer(openai_cloud):
    openai_cloud.set_faults([{"kind": "hang", "seconds": 0.2}])
    started = time.monotonic()
    assert (await chat(openai_cloud)).choices[0].finish_reason == "stop"
    assert time.monotonic() - started >= 0.2


async def test_reset_drops_the_connection(openai_cloud):
    openai_cloud.set_faults([{"kind": "reset", "at": [1]}])
    with pytest.raises(openai.APIConnectionError):
        await chat(openai_cloud)
    assert openai_cloud.stats["by_status"]["reset"] == 1
    assert (await chat(openai_cloud)).choices


async def test_cut_stream_breaks_streams_after_k_chunks_and_spares_plain_calls(openai_cloud):
    openai_cloud.set_faults([{"kind": "cut_stream", "after_chunks": 3}])
    assert (await chat(openai_cloud)).choices[0].finish_reason == "stop"  # non-stream: unaffected
    received = []
    with pytest.raises(openai.APIConnectionError):  # the SDK's wrapping of a chunked body cut short
        async for chunk in await chat(openai_cloud, stream=True):
            received.append(chunk)
    assert len(received) == 3
    assert openai_cloud.stats["faults"] == {"cut_stream": 1}


async def test_cut_stream_longer_than_the_stream_still_breaks_it(openai_cloud):
    openai_cloud.set_faults([{"kind": "cut_stream", "after_chunks": 1000}])
    received = []
    with pytest.raises(openai.APIConnectionError):  # the SDK's wrapping of a chunked body cut short
        async for chunk in await chat(openai_cloud, stream=True):
            received.append(chunk)
    assert received and received[-1].choices[0].finish_reason == "stop"  # everything but the final [DONE]


async def raw_stream_answer(cloud) -> tuple[bytes, bytes]:
    """A streamed chat answer as the bytes on the wire: (head, body) up to the chunked terminator or the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", cloud.port)
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "stream": true}'
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n"
                 b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
    received = b""
    try:
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:  # the cloud closed the connection
                break
            received += data
    finally:
        writer.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    return head.lower(), rest


@pytest.mark.parametrize("ending", ["clean", "close"])
async def test_cut_stream_can_end_cleanly_short_of_the_end(openai_cloud, ending):
    """`ending: clean | close`: the body ends as if complete (a chunked terminator, or a close-delimited body's
    clean close) after the first events, without `data: [DONE]`; the SDK sees a normal end."""
    openai_cloud.set_faults([{"kind": "cut_stream", "after_chunks": 3, "ending": ending, "times": 1}])
    received = [chunk async for chunk in await chat(openai_cloud, stream=True)]
    assert len(received) == 3 and received[-1].choices[0].finish_reason is None
    openai_cloud.set_faults([{"kind": "cut_stream", "after_chunks": 3, "ending": ending}])
    head, body = await raw_stream_answer(openai_cloud)
    assert b"[DONE]" not in body and body.count(b"data: ") == 3
    if ending == "clean":
        assert b"transfer-encoding: chunked" in head and body.endswith(b"\r\n0\r\n\r\n")
    else:
        assert b"transfer-encoding" not in head and b"content-length" not in head and b"connection: close" in head
        assert body.endswith(b"\n\n")  # whole events, then the close


async def test_slow_adds_latency(openai_cloud):
    openai_cloud.set_faults([{"kind": "slow", "extra_ms": 200}])
    started = time.monotonic()
    await chat(openai_cloud)
    assert time.monotonic() - started >= 0.2


async def test_match_limits_faults_to_one_operation(openai_cloud):
    openai_cloud.set_faults([{"status": 500, "match": "embeddings"}])
    assert (await chat(openai_cloud)).choices
    with pytest.raises(openai.InternalServerError):
        await api(openai_cloud).embeddings.create(model="text-embedding-3-small", input="x")


async def test_faults_from_the_spec_and_clear(make_cloud):
    cloud = await make_cloud(name="flaky", faults=[{"status": 503, "every": 2}])
    assert (await chat(cloud)).choices
    with pytest.raises(openai.InternalServerError):
        await chat(cloud)
    cloud.clear_faults()
    assert (await chat(cloud)).choices and (await chat(cloud)).choices


async def test_admin_api(openai_cloud):
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{openai_cloud.port}", timeout=5) as http:
        response = await http.put("/_emulator/faults", json=[{"status": 429, "at": [1], "retry_after": 3}])
        assert response.status_code == 200 and response.json()[0]["status"] == 429
        with pytest.raises(openai.RateLimitError):
            await chat(openai_cloud)
        faults = (await http.get("/_emulator/faults")).json()
        assert faults[0]["fired"] == 1
        stats = (await http.get("/_emulator/stats")).json()
        assert stats["requests"] == 1 and stats["by_status"] == {"429": 1}
        assert stats["by_path"] == {"POST /v1/chat/completions": 1}
        bad = await http.put("/_emulator/faults", json=[{"kind": "nope"}])
        assert bad.status_code == 400 and "faults[0].kind" in bad.json()["error"]
        assert (await http.delete("/_emulator/faults")).json() == []
        assert (await chat(openai_cloud)).choices
        recent = (await http.get("/_emulator/requests")).json()
        assert len(recent) == 2 and recent[0]["headers"]["authorization"] == "<redacted>"
        assert (await http.delete("/_emulator/stats")).json()["requests"] == 0
        assert (await http.get("/_emulator/nothing")).status_code == 404


async def test_stop_and_start_on_the_same_port(openai_cloud):
    port = openai_cloud.port
    assert (await chat(openai_cloud)).choices
    await openai_cloud.stop()
    with pytest.raises(openai.APIConnectionError):
        await chat(openai_cloud)
    await openai_cloud.start()
    assert openai_cloud.port == port
    assert (await chat(openai_cloud)).choices
    assert openai_cloud.stats["requests"] == 2  # stats survive the outage


async def test_stop_drops_requests_in_flight(openai_cloud):
    openai_cloud.set_faults([{"kind": "hang"}])
    pending = asyncio.ensure_future(chat(openai_cloud))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await openai_cloud.stop()
    with pytest.raises(openai.APIConnectionError):
        await pending
    assert time.monotonic() - started < 1


async def test_timing_ttft_and_token_rate(make_cloud):
    cloud = await make_cloud(name="slowpoke", ttft_ms=100, tokens_per_second=100, output_tokens=10)
    started = time.monotonic()
    await chat(cloud)
    assert 0.19 <= time.monotonic() - started < 1.0  # 100 ms + 10 tokens at 100/s
    started = time.monotonic()
    stream = await chat(cloud, stream=True)
    first_at = None
    async for _ in stream:
        first_at = first_at or time.monotonic() - started
    total = time.monotonic() - started
    assert 0.09 <= first_at < 0.5 and total >= 0.18
