"""Anthropic in, a reasoning cloud out: when the client asks for thinking, the thoughts of Gemini (thought parts),
Bedrock Converse (DeepSeek-R1, gpt-oss, Nova 2: reasoningContent) and a vLLM reasoning server (reasoning_content)
come back as `thinking` blocks before the text, whole and streamed in the order of Anthropic's streaming reference,
each with a signature of the gateway's (sky1.). Handed back in the next turn, a block reaches the cloud that can
take it (Converse, the signed reasoning of the same model, verified by the emulator as the cloud verifies its
own) and is otherwise left out and named in x-skyrelay-dropped-params, never refused: an Anthropic-family cloud
gets the history without the gateway's blocks. The real anthropic SDK, sync and async, drives the gateway."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import TIMEOUTS

GEMINI, R1, GPT_OSS, NOVA2 = "gemini-2.5-flash", "us.deepseek.r1-v1:0", "openai.gpt-oss-120b-1:0", \
    "us.amazon.nova-2-lite-v1:0"
VLLM_R1 = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
CLOUDS = [{"name": "google", "protocol": "gemini", "models": [GEMINI]},
          {"name": "aws", "protocol": "bedrock", "api_key": None, "models": [R1, GPT_OSS, NOVA2]},
          {"name": "vllm", "protocol": "openai", "models": [VLLM_R1], "options": {"reasoning_models": [VLLM_R1]}},
          {"name": "claude", "protocol": "anthropic"}]
THINKING = {"type": "enabled", "budget_tokens": 2048}
ASK = [{"role": "user", "content": "Think, then answer."}]
SHOWING = ["gemini", "r1", "gpt-oss", "nova-2", "vllm"]  # the groups whose cloud shows its thoughts
CLOUD_OF = {"gemini": "google", "r1": "aws", "gpt-oss": "aws", "nova-2": "aws", "vllm": "vllm", "claude": "claude"}
DROPPED = "x-skyrelay-dropped-params"


def groups(clouds) -> dict:
    def bedrock(name, model):
        return {"deployments": [{"name": name, "kind": "bedrock", "base_url": clouds["aws"].base_url,
                                 "region": "us-east-1", "model": model, "aws_access_key_id": "AKIDE2E",
                                 "aws_secret_access_key": "secret", "timeouts": TIMEOUTS}]}
    return {
        "gemini": {"deployments": [{"name": "gemini-a", "kind": "gemini", "api_key": UPSTREAM_KEY,
                                    "base_url": clouds["google"].base_url, "model": GEMINI, "timeouts": TIMEOUTS}]},
        "r1": bedrock("aws-r1", R1), "gpt-oss": bedrock("aws-gpt-oss", GPT_OSS), "nova-2": bedrock("aws-nova", NOVA2),
        "vllm": {"deployments": [{"name": "vllm-r1", "kind": "openai", "base_url": clouds["vllm"].base_url,
                                  "api_key": UPSTREAM_KEY, "model": VLLM_R1, "shows_reasoning": True,
                                  "timeouts": TIMEOUTS}]},
        "claude": {"deployments": [{"name": "claude-a", "kind": "anthropic", "model": "claude-x",
                                    "base_url": clouds["claude"].base_url, "api_key": UPSTREAM_KEY,
                                    "timeouts": TIMEOUTS}]},
    }


stack = module_stack(CLOUDS, groups)


def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def async_client(stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def sent(stack, group: str) -> dict:
    return stack.clouds[CLOUD_OF[group]].recent_requests[-1]["body"]


def assert_thought_then_text(message) -> None:
    assert [b.type for b in message.content] == ["thinking", "text"]
    thought, text = message.content
    assert thought.thinking and thought.signature.startswith("sky1.") and text.text
    assert thought.thinking not in text.text


def assert_reference_order(events: list) -> None:
    """Anthropic's streaming reference: the thinking block (start empty, thinking deltas, one signature delta,
    stop) at index 0, then the text block at index 1."""
    blocks = [e for e in events if e.type.startswith("content_block")]
    start, *deltas = [e for e in blocks if e.index == 0][:-1]
    assert start.type == "content_block_start" and start.content_block.type == "thinking"
    assert start.content_block.thinking == "" and start.content_block.signature == ""
    kinds = [d.delta.type for d in deltas]
    assert kinds[-1] == "signature_delta" and set(kinds[:-1]) == {"thinking_delta"}
    assert deltas[-1].delta.signature.startswith("sky1.")
    assert [e.type for e in blocks if e.index == 0][-1] == "content_block_stop"
    first_text = next(i for i, e in enumerate(blocks) if e.index == 1)
    assert all(e.index == 0 for e in blocks[:first_text])  # block 0 closed before block 1 opens
    assert blocks[first_text].type == "content_block_start" and blocks[first_text].content_block.type == "text"


@pytest.mark.parametrize("group", SHOWING)
def test_whole_answer_opens_with_the_clouds_thoughts(stack, group):
    raw = client(stack).messages.with_raw_response.create(model=group, max_tokens=4000, messages=ASK,
                                                          thinking=THINKING)
    assert DROPPED not in raw.headers
    assert_thought_then_text(raw.parse())
    if group == "gemini":  # Gemini shows its thoughts only when asked
        assert sent(stack, group)["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


@pytest.mark.parametrize("group", SHOWING)
def test_stream_shows_the_thinking_block_first_in_the_reference_order(stack, group):
    with client(stack).messages.stream(model=group, max_tokens=4000, messages=ASK, thinking=THINKING) as stream:
        events = list(stream)
        message = stream.get_final_message()
    assert_reference_order(events)
    assert_thought_then_text(message)


@pytest.mark.parametrize("group", ["gemini", "gpt-oss", "vllm"])
def test_async_client_whole_and_streamed(stack, group):
    async def run():
        async with async_client(stack) as c:
            whole = await c.messages.create(model=group, max_tokens=4000, messages=ASK, thinking=THINKING)
            async with c.messages.stream(model=group, max_tokens=4000, messages=ASK, thinking=THINKING) as stream:
                events = [event async for event in stream]
                streamed = await stream.get_final_message()
        return whole, events, streamed
    whole, events, streamed = asyncio.run(run())
    assert_thought_then_text(whole)
    assert_reference_order(events)
    assert_thought_then_text(streamed)


def test_adaptive_thinking_shows_the_thoughts_too(stack):
    message = client(stack).messages.create(model="gemini", max_tokens=4000, messages=ASK,
                                            thinking={"type": "adaptive"})
    assert_thought_then_text(message)


def test_no_thinking_asked_no_thinking_block(stack):
    for group in ("r1", "vllm"):  # clouds that reason and show it whatever is asked
        message = client(stack).messages.create(model=group, max_tokens=4000, messages=ASK)
        assert [b.type for b in message.content] == ["text"]
        with client(stack).messages.stream(model=group, max_tokens=4000, messages=ASK) as stream:
            assert [b.type for b in stream.get_final_message().content] == ["text"]


def second_turn(message) -> list[dict]:
    """The conversation the SDK's user sends next: the assistant's blocks as they came, then a new question."""
    return [*ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {"role": "user", "content": "And now?"}]


@pytest.mark.parametrize("group", ["gpt-oss", "nova-2"])
def test_converse_takes_its_own_signed_reasoning_back(stack, group):
    first = client(stack).messages.create(model=group, max_tokens=4000, messages=ASK, thinking=THINKING)
    thought, text = first.content
    with client(stack).messages.stream(model=group, max_tokens=4000, messages=second_turn(first),
                                       thinking=THINKING) as stream:
        assert_thought_then_text(stream.get_final_message())  # the emulator verified the signature
        assert DROPPED not in stream.response.headers
    assistant = sent(stack, group)["messages"][1]
    assert assistant["role"] == "assistant"
    reasoning = assistant["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] == thought.thinking and reasoning["signature"]
    assert not reasoning["signature"].startswith("sky1.")  # Bedrock's own, out of the gateway's seal
    assert assistant["content"][1] == {"text": text.text}


@pytest.mark.parametrize("group", ["gemini", "r1", "vllm"])
def test_thoughts_no_cloud_takes_back_are_left_out_and_named(stack, group):
    first = client(stack).messages.create(model=group, max_tokens=4000, messages=ASK, thinking=THINKING)
    raw = client(stack).messages.with_raw_response.create(model=group, max_tokens=4000, messages=second_turn(first),
                                                          thinking=THINKING)
    assert raw.headers[DROPPED] == "messages.content.thinking"
    assert_thought_then_text(raw.parse())
    body = sent(stack, group)
    assert first.content[0].thinking not in str(body) and "sky1." not in str(body)


def test_another_models_reasoning_is_left_out_and_named(stack):
    first = client(stack).messages.create(model="gpt-oss", max_tokens=4000, messages=ASK, thinking=THINKING)
    raw = client(stack).messages.with_raw_response.create(model="nova-2", max_tokens=4000,
                                                          messages=second_turn(first), thinking=THINKING)
    assert raw.headers[DROPPED] == "messages.content.thinking"
    assert sent(stack, "nova-2")["messages"][1]["content"] == [{"text": first.content[1].text}]


def test_claude_gets_the_history_without_the_gateways_blocks(stack):
    first = client(stack).messages.create(model="gemini", max_tokens=4000, messages=ASK, thinking=THINKING)
    for stream in (False, True):
        raw = client(stack).messages.with_raw_response.create(
            model="claude", max_tokens=4000, messages=second_turn(first), thinking=THINKING, stream=stream)
        assert raw.headers[DROPPED] == "messages.content.thinking"
        raw.parse() if not stream else list(raw.parse())  # the emulator checks every thinking signature
        assistant = sent(stack, "claude")["messages"][1]
        assert assistant == {"role": "assistant", "content": [{"type": "text", "text": first.content[1].text}]}


def test_claudes_own_thinking_on_another_cloud_is_left_out_and_named(stack):
    first = client(stack).messages.create(model="claude", max_tokens=4000, messages=ASK, thinking=THINKING)
    assert first.content[0].type == "thinking" and not first.content[0].signature.startswith("sky1.")
    raw = client(stack).messages.with_raw_response.create(model="gpt-oss", max_tokens=4000,
                                                          messages=second_turn(first), thinking=THINKING)
    assert raw.headers[DROPPED] == "messages.content.thinking"
    assert "reasoningContent" not in str(sent(stack, "gpt-oss")["messages"][1])
