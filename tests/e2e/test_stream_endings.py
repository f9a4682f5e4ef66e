"""How a stream ends decides what it was: an OpenAI or Azure stream whose body ends, however cleanly, before
`data: [DONE]` is a failure the SDK raises (or fails over, when nothing reached the client yet), never half an
answer passed off as whole; and a cloud that breaks every stream after its first tokens leaves rotation."""

from __future__ import annotations

import openai
import pytest

from .harness import UPSTREAM_KEY, openai_deployment

HELLO = [{"role": "user", "content": "hello"}]
ENDINGS = ["clean", "close"]  # a chunked body's terminator; a close-delimited body's clean close
# Events before the first token: OpenAI's role chunk; Azure opens with a prompt-filter chunk, then the role.
PREAMBLE = {"openai": 1, "azure": 2}


def cloud(protocol: str, name: str, **extra) -> dict:
    spec = {"name": name, "protocol": protocol, "output_tokens": 40, **extra}
    if protocol == "azure":
        spec["deployments"] = [{"name": "gpt4o-prod", "model": "gpt-4o"}]
    return spec


def deployment(protocol: str, name: str, where) -> dict:
    if protocol == "azure":
        return {"name": name, "kind": "azure", "base_url": where.base_url, "api_key": UPSTREAM_KEY,
                "model": "gpt4o-prod", "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}
    return openai_deployment(name, where)


def chat_group(protocol: str, *names: str):
    def groups(clouds):
        return {"chat": {"strategy": "weighted", "max_attempts": 3,
                         "deployments": [deployment(protocol, n, clouds[n]) for n in names]}}
    return groups


def stream_text(client) -> str:
    """One streamed answer's text; raises what the SDK raises."""
    stream = client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.mark.parametrize("protocol", ["openai", "azure"])
@pytest.mark.parametrize("ending", ENDINGS)
def test_a_stream_ended_cleanly_before_done_raises_in_the_sdk(make_stack, protocol, ending):
    s = make_stack(cloud_specs=[cloud(protocol, "cloud-a")], groups=chat_group(protocol, "cloud-a"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 4, "ending": ending}])
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in s.openai().chat.completions.create(model="chat", messages=HELLO, stream=True):
            received.append(chunk)
    assert any(c.choices and c.choices[0].delta.content for c in received), "the first tokens came before the end"
    assert "cloud-a" in str(caught.value) and "[DONE]" in str(caught.value)
    assert s.gateway.dispatcher.outstanding["cloud-a"] == 0


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_stream_ended_cleanly_before_done_raises_in_the_async_sdk(make_stack, ending):
    s = make_stack(cloud_specs=[cloud("openai", "cloud-a")], groups=chat_group("openai", "cloud-a"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 4, "ending": ending}])
    client = s.async_openai()
    text = ""
    with pytest.raises(openai.APIError, match=r"ended the stream before \[DONE\]"):
        async for chunk in await client.chat.completions.create(model="chat", messages=HELLO, stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert text
    await client.close()


@pytest.mark.parametrize("protocol", ["openai", "azure"])
@pytest.mark.parametrize("ending", ENDINGS)
def test_a_stream_ended_cleanly_before_any_output_fails_over_invisibly(make_stack, protocol, ending):
    s = make_stack(cloud_specs=[cloud(protocol, "cloud-a"), cloud(protocol, "cloud-b")],
                   groups=chat_group(protocol, "cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": PREAMBLE[protocol], "ending": ending}])
    client = s.openai()
    for _ in range(6):
        with client.chat.completions.with_streaming_response.create(
                model="chat", messages=HELLO, stream=True) as raw:
            assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            assert raw.headers["x-skyrelay-deployment"] == "cloud-b"
    assert s.clouds["cloud-a"].stats["faults"].get("cut_stream", 0) >= 1


@pytest.mark.parametrize("ending", ["reset", "clean"])
def test_a_cloud_that_cuts_every_stream_after_its_first_tokens_leaves_rotation(make_stack, ending):
    """Each stream commits (its first tokens reach the client) and then breaks: the breaker must count those
    breaks, so after `failure_threshold` of them the cloud is left alone, instead of failing about half of all
    streams for as long as it is broken."""
    s = make_stack(cloud_specs=[cloud("openai", "cloud-a"), cloud("openai", "cloud-b")],
                   groups=chat_group("openai", "cloud-a", "cloud-b"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 4, "ending": ending}])
    client = s.openai()
    failed = 0
    for _ in range(24):
        try:
            assert stream_text(client)
        except openai.APIError as exc:
            assert "cloud-a" in str(exc)
            failed += 1
    dispatcher = s.gateway.dispatcher
    threshold = dispatcher.health.policy.failure_threshold
    assert failed == threshold  # no probe within the test: the breaker's cool-down (30 s) is longer
    assert s.clouds["cloud-a"].stats["requests"] == threshold
    assert dispatcher.health.state("cloud-a", dispatcher.clock()) == "open"
