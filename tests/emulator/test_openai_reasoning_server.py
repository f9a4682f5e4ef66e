"""The `openai` emulator playing an OpenAI-compatible reasoning server (vLLM / SGLang with a reasoning parser):
`reasoning_content` (or newer vLLM's `reasoning`) in messages and deltas, read by the official openai SDK, every
body still valid against the spec."""

from __future__ import annotations

import orjson
import pytest
from openai import AsyncOpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

R1, PLAIN = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "Qwen/Qwen2.5-7B-Instruct"
HI = [{"role": "user", "content": "Think, then say something nice."}]


async def _cloud(make_cloud, **options):
    return await make_cloud(name="vllm", protocol="openai", models=[R1, PLAIN], seed=4,
                            options={"reasoning_models": [R1], **options})


def _client(cloud) -> AsyncOpenAI:
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="sk-test", max_retries=0))


async def test_reasoning_model_shows_reasoning_content_and_counts_it(make_cloud):
    cloud = await _cloud(make_cloud)
    raw = await _client(cloud).chat.completions.with_raw_response.create(model=R1, messages=HI)
    data = orjson.loads(raw.http_response.content)
    validate("CreateChatCompletionResponse", data)
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"]
    usage = data["usage"]
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] < usage["completion_tokens"]
    plain = await _client(cloud).chat.completions.create(model=PLAIN, messages=HI)
    assert not hasattr(plain.choices[0].message, "reasoning_content") or \
        plain.choices[0].message.reasoning_content is None
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_stream_sends_the_reasoning_deltas_before_the_answer(make_cloud, field):
    cloud = await _cloud(make_cloud, reasoning_field=field)
    client = _client(cloud)
    whole = orjson.loads((await client.chat.completions.with_raw_response.create(
        model=R1, messages=HI)).http_response.content)
    stream = await client.chat.completions.create(model=R1, messages=HI, stream=True,
                                                  stream_options={"include_usage": True})
    kinds, thoughts, text = [], "", ""
    async for chunk in stream:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.model_dump()
        if delta.get(field):
            kinds.append("thought")
            thoughts += delta[field]
        if delta.get("content"):
            kinds.append("text")
            text += delta["content"]
    assert kinds[0] == "thought" and kinds == sorted(kinds, key=lambda k: k != "thought")
    assert thoughts == whole["choices"][0]["message"][field]
    assert text == whole["choices"][0]["message"]["content"]


async def test_unknown_reasoning_field_is_a_config_error(make_cloud):
    from skyrelay.emulator import EmulatorConfigError
    with pytest.raises(EmulatorConfigError):
        await _cloud(make_cloud, reasoning_field="thoughts")
