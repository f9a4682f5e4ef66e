"""The Anthropic emulator honours prompt-caching breakpoints and signs the thinking blocks it returns, proven by
the official `anthropic` SDK: a first request with a breakpoint writes the cache, a repeat reads it, a tampered
signature is refused, as the Messages API does."""

from __future__ import annotations

import anthropic
import pytest

from skyrelay.emulator import CloudSpec, start_cloud

KEY = "sk-ant-test-key"
MODEL = "claude-haiku-4-5"  # a model the SDK does not warn about (it lists claude-opus-4-5 as deprecated)
LONG_SYSTEM = "You are a careful assistant who answers questions about the code base. " * 80  # ~1400 tokens


@pytest.fixture(scope="module")
def cloud(bg):
    spec = CloudSpec(name="anthropic-cache", protocol="anthropic", api_key=KEY, ttft_ms=1, tokens_per_second=0,
                     seed=3)
    c = bg.run(start_cloud(spec))
    yield c
    bg.run(c.stop())


@pytest.fixture
def client(cloud):
    with anthropic.Anthropic(base_url=cloud.base_url, api_key=KEY, max_retries=0, timeout=5) as c:
        yield c


def cached_system(text: str = LONG_SYSTEM, **control) -> list[dict]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", **control}}]


def test_first_request_writes_the_cache_and_a_repeat_reads_it(client):
    system = cached_system(LONG_SYSTEM + "first")
    first = client.messages.create(model=MODEL, max_tokens=20, system=system,
                                   messages=[{"role": "user", "content": "hi"}])
    assert first.usage.cache_creation_input_tokens >= 1024 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens
    again = client.messages.create(model=MODEL, max_tokens=20, system=system,
                                   messages=[{"role": "user", "content": "something else"}])
    assert again.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert again.usage.cache_creation_input_tokens == 0


def test_a_moved_breakpoint_still_reads_the_earlier_turns(client):
    system = cached_system(LONG_SYSTEM + "moved")
    turn = [{"role": "user", "content": [{"type": "text", "text": "question one",
                                          "cache_control": {"type": "ephemeral"}}]}]
    first = client.messages.create(model=MODEL, max_tokens=20, system=system, messages=turn)
    history = [{"role": "user", "content": [{"type": "text", "text": "question one"}]},
               {"role": "assistant", "content": "answer one"},
               {"role": "user", "content": [{"type": "text", "text": "question two",
                                             "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    second = client.messages.create(model=MODEL, max_tokens=20, system=system, messages=history)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation.ephemeral_1h_input_tokens == second.usage.cache_creation_input_tokens > 0


def test_a_short_prefix_is_not_cached(client):
    reply = client.messages.create(model=MODEL, max_tokens=20, system=cached_system("Be brief."),
                                   messages=[{"role": "user", "content": "hi"}])
    assert reply.usage.cache_creation_input_tokens == 0 and reply.usage.cache_read_input_tokens == 0


def test_more_than_four_breakpoints_is_refused(client):
    system = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        client.messages.create(model=MODEL, max_tokens=20, system=system, messages=[{"role": "user", "content": "x"}])


def thinking_turn(client, **kw):
    return client.messages.create(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "think about it"}], **kw)


def test_signed_thinking_goes_back_and_a_tampered_one_is_refused(client):
    reply = thinking_turn(client)
    thinking = reply.content[0]
    assert thinking.type == "thinking" and thinking.signature
    history = [{"role": "user", "content": "think about it"},
               {"role": "assistant", "content": [thinking.model_dump(), {"type": "text", "text": "done"}]},
               {"role": "user", "content": "and then?"}]
    follow = client.messages.create(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                    messages=history)
    assert follow.content
    history[1]["content"][0] = {**thinking.model_dump(), "thinking": thinking.thinking + " (edited)"}
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        client.messages.create(model=MODEL, max_tokens=2048, messages=history)


def test_streamed_thinking_carries_the_same_kind_of_signature(client):
    with client.messages.stream(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "think"}]) as stream:
        message = stream.get_final_message()
    block = message.content[0]
    history = [{"role": "user", "content": "think"}, {"role": "assistant", "content": [block.model_dump()]},
               {"role": "user", "content": "more"}]
    assert client.messages.create(model=MODEL, max_tokens=20, messages=history).content


def test_context_management_and_betas_are_accepted(client):
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}],
        betas=["context-management-2025-06-27"],
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]})
    assert reply.content
