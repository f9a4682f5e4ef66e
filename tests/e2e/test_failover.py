"""A cloud's bad day costs the client nothing while another deployment can serve."""

from __future__ import annotations

import asyncio
import random
import time

import httpx2 as httpx
import openai
import pytest

HELLO = [{"role": "user", "content": "hello"}]


def one_group(*names: str, strategy: str = "weighted", **deployment_extra):
    """Model group `chat` over the named clouds in this order, all equal weight."""
    from .harness import openai_deployment

    def groups(clouds):
        return {"chat": {"strategy": strategy, "max_attempts": 3,
                         "deployments": [openai_deployment(n, clouds[n], **deployment_extra) for n in names]}}
    return groups


def served_by(raw) -> str:
    return raw.headers["x-skyrelay-deployment"]


def run_requests(stack, count: int, stream: bool = False) -> list[str]:
    client = stack.openai()
    servers = []
    for _ in range(count):
        if stream:
            with client.chat.completions.with_streaming_response.create(
                    model="chat", messages=HELLO, stream=True) as raw:
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                assert text
                servers.append(served_by(raw))
        else:
            raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
            assert raw.parse().choices[0].message.content
            servers.append(served_by(raw))
    return servers


@pytest.mark.parametrize("stream", [False, True])
def test_cloud_answering_500_costs_no_request(make_stack, stream):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    servers = run_requests(s, 12, stream=stream)
    assert set(servers) == {"cloud-b"}
    # After a few failures the breaker opens: cloud-a stops being tried at all.
    assert s.clouds["cloud-a"].stats["requests"] <= 4


def test_429_retry_after_cools_the_deployment_down(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"status": 429, "rate": 1.0, "retry_after": 30}])
    servers = run_requests(s, 10)
    assert set(servers) == {"cloud-b"}
    assert s.clouds["cloud-a"].stats["requests"] == 1  # asked once, then left alone as its Retry-After said


def test_hanging_cloud_times_out_and_fails_over(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b", timeouts={"connect": 1, "first_byte": 0.3, "total": 5}))
    s.set_faults("cloud-a", [{"kind": "hang", "rate": 1.0}])
    start = time.monotonic()
    servers = run_requests(s, 6) + run_requests(s, 2, stream=True)
    assert set(servers) == {"cloud-b"}
    assert time.monotonic() - start < 5  # the breaker spares most requests the wait


@pytest.mark.parametrize("stream", [False, True])
def test_connection_reset_before_first_byte_fails_over(make_stack, stream):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"kind": "reset", "rate": 1.0}])
    assert set(run_requests(s, 6, stream=stream)) == {"cloud-b"}


def test_killed_cloud_costs_no_request(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    assert run_requests(s, 4)
    s.stop_cloud("cloud-a")
    servers = run_requests(s, 10) + run_requests(s, 3, stream=True)
    assert set(servers) == {"cloud-b"}


async def test_cloud_failing_during_concurrent_load(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b", strategy="least_outstanding"))
    client = s.async_openai()

    async def one():
        reply = await client.chat.completions.create(model="chat", messages=HELLO)
        return reply.choices[0].message.content

    first = await asyncio.gather(*[one() for _ in range(20)])
    s.set_faults("cloud-a", [{"status": 503, "rate": 1.0}])
    second = await asyncio.gather(*[one() for _ in range(40)])
    assert all(first) and all(second)
    await client.close()


def test_stream_cut_after_first_byte_ends_with_error_event(make_stack):
    """Once the client has bytes, failing over would duplicate text: the stream must end with an error the SDK
    raises, not hang and not end as if complete."""
    s = make_stack(cloud_specs=[{"name": "cloud-a", "output_tokens": 40}], groups=one_group("cloud-a"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 3, "rate": 1.0}])
    client = s.openai()
    received = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in client.chat.completions.create(model="chat", messages=HELLO, stream=True):
            received.append(chunk)
    assert received, "the first chunks reached the client before the cut"
    assert "cloud-a" in str(exc.value)


def test_stream_cut_before_first_chunk_fails_over(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 0, "rate": 1.0}])
    assert set(run_requests(s, 5, stream=True)) == {"cloud-b"}


def test_client_disconnect_cancels_the_upstream_request(make_stack):
    s = make_stack(cloud_specs=[{"name": "cloud-a", "output_tokens": 400, "tokens_per_second": 50}],
                   groups=one_group("cloud-a"))
    with httpx.stream("POST", f"{s.base_url}/chat/completions", timeout=10,
                      json={"model": "chat", "messages": HELLO, "stream": True},
                      headers={"authorization": f"Bearer {s.key}"}) as resp:
        for _ in resp.iter_bytes():
            break  # read one piece, then hang up (400 tokens at 50/s would take 8 s)
    deadline = time.monotonic() + 3
    dispatcher = s.gateway.dispatcher
    while time.monotonic() < deadline and dispatcher.outstanding["cloud-a"]:
        time.sleep(0.05)
    assert dispatcher.outstanding["cloud-a"] == 0
    # The half-read upstream connection was dropped, not returned to the pool: the upstream stops generating.
    assert s.gateway.providers["cloud-a"].http._open == 0


def test_breaker_lets_a_probe_through_and_recovers(make_stack):
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    dispatcher = s.gateway.dispatcher
    dispatcher.rng = random.Random(3)  # weighted order is random: seed it so cloud-a is tried often enough
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    run_requests(s, 30)
    assert dispatcher.health.state("cloud-a", dispatcher.clock()) == "open"
    s.clear_faults("cloud-a")
    dispatcher.clock = lambda: time.monotonic() + 3600  # jump past the cool-down
    servers = run_requests(s, 20)
    assert "cloud-a" in servers
    assert dispatcher.health.state("cloud-a", dispatcher.clock()) == "closed"


def test_stream_cut_right_after_the_role_chunk_fails_over(make_stack):
    """Clouds open a stream with a role-only chunk and may still fail before any token: the gateway holds that
    preamble back until output follows, so the client sees one clean stream from the next deployment."""
    s = make_stack(groups=one_group("cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 1, "rate": 1.0}])
    assert set(run_requests(s, 6, stream=True)) == {"cloud-b"}
    assert s.clouds["cloud-a"].stats["requests"] >= 1


def test_an_upstream_stream_that_stalls_ends_quickly_with_an_error(make_stack):
    """A cloud that goes quiet in the middle of a stream is cut after the first-byte limit, not the total one."""
    s = make_stack(cloud_specs=[{"name": "cloud-a", "output_tokens": 40, "tokens_per_second": 0.2}],
                   groups=one_group("cloud-a", timeouts={"connect": 1, "first_byte": 2.5, "total": 60}))
    started = time.monotonic()
    with pytest.raises(openai.APIError) as exc:
        for _ in s.openai().chat.completions.create(model="chat", messages=HELLO, stream=True):
            pass
    assert time.monotonic() - started < 8  # 40 tokens at one per 5 s would take minutes
    assert "cloud-a" in str(exc.value)


async def test_killing_a_cloud_mid_run_under_concurrent_load_costs_no_request(make_stack):
    """Eight clients keep sending while one cloud dies, and later comes back: not one request fails, and the
    recovered cloud takes traffic again."""
    s = make_stack(groups=one_group("cloud-a", "cloud-b", strategy="least_outstanding"))
    client = s.async_openai()
    served: list[str] = []
    stop = asyncio.Event()

    async def worker():
        while not stop.is_set():
            raw = await client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
            assert raw.parse().choices[0].message.content
            served.append(raw.headers["x-skyrelay-deployment"])

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    await asyncio.sleep(0.4)
    await asyncio.to_thread(s.stop_cloud, "cloud-a")  # dies with requests in flight
    killed_at = len(served)
    await asyncio.sleep(0.6)
    await asyncio.to_thread(s.bg.run, s.clouds["cloud-a"].start())  # back on the same port
    s.gateway.dispatcher.clock = lambda: time.monotonic() + 3600  # skip the breaker's cool-down
    back_at = len(served)
    await asyncio.sleep(0.6)
    stop.set()
    await asyncio.gather(*workers)  # any failed request would raise here
    await client.close()
    assert killed_at > 0 and len(served) > back_at
    assert "cloud-a" in served[:killed_at] and "cloud-a" in served[back_at:]
