"""Thought summaries (`thinkingConfig.includeThoughts`) from the emulator's Gemini API, read by `google-genai`."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from skyrelay.emulator import CloudSpec, start_cloud

KEY = "gemini-test-key"
MODEL = "gemini-2.5-flash"
HELLO = "Hello there, think about it first."
THINK = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))


@pytest.fixture(scope="module")
def gemini(bg):
    spec = CloudSpec(name="gemini-thoughts", protocol="gemini", api_key=KEY, models=[MODEL], ttft_ms=1,
                     tokens_per_second=0, seed=3)
    cloud = bg.run(start_cloud(spec))
    yield cloud
    bg.run(cloud.stop())


@pytest.fixture
async def client(gemini):
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=gemini.base_url))
    yield client
    await client.aio.aclose()
    client.close()


def test_thought_part_comes_first_and_is_counted_apart(client):
    response = client.models.generate_content(model=MODEL, contents=HELLO, config=THINK)
    parts = response.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text
    assert all(not p.thought for p in parts[1:]) and response.text  # .text leaves the thoughts out
    usage = response.usage_metadata
    assert usage.thoughts_token_count > 0
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + usage.thoughts_token_count)


def test_stream_sends_the_thoughts_before_the_answer(client):
    whole = client.models.generate_content(model=MODEL, contents=HELLO, config=THINK)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=HELLO, config=THINK))
    kinds = [bool(p.thought) for c in chunks for p in (c.candidates[0].content.parts or ())]
    assert kinds[0] is True and kinds == sorted(kinds, reverse=True)  # all thoughts, then all answer
    thoughts = "".join(p.text for c in chunks for p in c.candidates[0].content.parts or () if p.thought)
    assert thoughts == whole.candidates[0].content.parts[0].text
    assert chunks[-1].usage_metadata.thoughts_token_count == whole.usage_metadata.thoughts_token_count


@pytest.mark.parametrize("config", [
    types.GenerateContentConfig(),
    types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=1024)),
    types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=0)),
])
def test_no_thoughts_unless_asked_and_thinking(client, config):
    response = client.models.generate_content(model=MODEL, contents=HELLO, config=config)
    assert not any(p.thought for p in response.candidates[0].content.parts)
    assert not response.usage_metadata.thoughts_token_count
