"""One model group spread over every provider kind (Azure OpenAI, Bedrock, Anthropic, Gemini, Vertex AI and a
self-hosted OpenAI-compatible cluster), each an emulated cloud speaking its real protocol, serves the openai and the
anthropic SDKs unchanged, streaming, tools and images included: the clients never learn which cloud answered."""

from __future__ import annotations

import json
import random

import anthropic
import pytest

from .harness import UPSTREAM_KEY, start_stack

KEY_ID, SECRET = "AKIDMULTICLOUD", "multicloud-secret"
TIMEOUTS = {"connect": 1, "first_byte": 3, "total": 10}
CLOUDS = [
    {"name": "azure", "protocol": "azure", "deployments": [{"name": "gpt-4o", "model": "gpt-4o"}]},
    {"name": "aws", "protocol": "bedrock", "api_key": None,
     "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}},
    {"name": "anthropic", "protocol": "anthropic"},
    {"name": "google", "protocol": "gemini"},
    {"name": "vertex", "protocol": "vertex", "options": {"project": "acme", "location": "europe-west4"}},
    {"name": "cluster", "protocol": "openai"},
]
DEPLOYMENTS = ("azure-eastus", "bedrock-useast1", "anthropic-direct", "gemini-global", "vertex-eu", "vllm-cluster")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Lisbon?"}]


def groups(clouds) -> dict:
    common = {"api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {"chat": {"deployments": [
        {"name": "azure-eastus", "kind": "azure", "base_url": clouds["azure"].base_url, "model": "gpt-4o", **common},
        {"name": "bedrock-useast1", "kind": "bedrock", "base_url": clouds["aws"].base_url, "region": "us-east-1",
         "model": "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws_access_key_id": KEY_ID,
         "aws_secret_access_key": SECRET, "timeouts": TIMEOUTS},
        {"name": "anthropic-direct", "kind": "anthropic", "base_url": clouds["anthropic"].base_url,
         "model": "claude-3-5-sonnet-latest", **common},
        {"name": "gemini-global", "kind": "gemini", "base_url": clouds["google"].base_url,
         "model": "gemini-2.0-flash", **common},
        {"name": "vertex-eu", "kind": "vertex", "base_url": clouds["vertex"].base_url, "model": "gemini-2.0-flash",
         "project": "acme", "location": "europe-west4", **common},
        {"name": "vllm-cluster", "kind": "openai", "base_url": clouds["cluster"].base_url,
         "model": "meta-llama/Llama-3.1-8B-Instruct", **common},
    ]}}


@pytest.fixture(scope="module")
def multi(bg):
    stack = start_stack(bg, CLOUDS, groups)
    stack.gateway.dispatcher.rng = random.Random(7)  # deterministic spread over the four clouds
    yield stack
    stack.close()


def until_every_cloud_served(call, limit: int = 90) -> set[str]:
    served = set()
    for _ in range(limit):
        served.add(call())
        if served == set(DEPLOYMENTS):
            break
    return served


def test_openai_sdk_over_every_cloud(multi):
    client = multi.openai()

    def call():
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=ASK_WEATHER, max_tokens=40)
        assert raw.parse().choices[0].message.content
        return raw.headers["x-skyrelay-deployment"]

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_openai_sdk_streaming_tools_over_every_cloud(multi):
    client = multi.openai()

    def call():
        with client.chat.completions.with_streaming_response.create(
                model="chat", messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required", stream=True,
                stream_options={"include_usage": True}) as raw:
            chunks = list(raw.parse())
            deployment = raw.headers["x-skyrelay-deployment"]
        name, args, finish = "", "", None
        for chunk in chunks:
            if chunk.choices:
                for delta in chunk.choices[0].delta.tool_calls or []:
                    name += delta.function.name or ""
                    args += delta.function.arguments or ""
                finish = chunk.choices[0].finish_reason or finish
        assert (name, finish) == ("get_weather", "tool_calls"), deployment
        assert "city" in json.loads(args), deployment
        assert chunks[-1].usage.completion_tokens > 0, deployment
        return deployment

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_anthropic_sdk_over_every_cloud(multi):
    client = anthropic.Anthropic(base_url=multi.origin, api_key=multi.key, max_retries=0)
    tool = {"name": "get_weather", "description": "Get the current weather for a city",
            "input_schema": WEATHER["function"]["parameters"]}

    def call():
        raw = client.messages.with_raw_response.create(model="chat", max_tokens=64, messages=ASK_WEATHER,
                                                       tools=[tool], tool_choice={"type": "any"})
        message = raw.parse()
        use = next(block for block in message.content if block.type == "tool_use")
        assert use.name == "get_weather" and "city" in use.input
        assert message.stop_reason == "tool_use"
        return raw.headers["x-skyrelay-deployment"]

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_anthropic_sdk_streaming_over_every_cloud(multi):
    client = anthropic.Anthropic(base_url=multi.origin, api_key=multi.key, max_retries=0)

    def call():
        with client.messages.with_streaming_response.create(
                model="chat", max_tokens=40, messages=[{"role": "user", "content": "hello"}], stream=True) as raw:
            deployment = raw.headers["x-skyrelay-deployment"]
            events = list(raw.parse())
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        assert text, deployment
        assert events[-1].type == "message_stop"
        return deployment

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_openai_sdk_with_an_image_over_every_cloud(multi):
    client = multi.openai()
    content = [{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]

    def call():
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": content}], max_tokens=30)
        assert raw.parse().choices[0].message.content
        return raw.headers["x-skyrelay-deployment"]

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_anthropic_sdk_streaming_tools_and_an_image_over_every_cloud(multi):
    client = anthropic.Anthropic(base_url=multi.origin, api_key=multi.key, max_retries=0)
    tool = {"name": "get_weather", "description": "Get the current weather for a city",
            "input_schema": WEATHER["function"]["parameters"]}
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
               {"type": "text", "text": "What is the weather where this picture was taken, in Lisbon?"}]

    def call():
        with client.messages.stream(model="chat", max_tokens=64, messages=[{"role": "user", "content": content}],
                                    tools=[tool], tool_choice={"type": "tool", "name": "get_weather"}) as stream:
            message = stream.get_final_message()
            deployment = stream.response.headers["x-skyrelay-deployment"]
        use = next(block for block in message.content if block.type == "tool_use")
        assert use.name == "get_weather" and "city" in use.input, deployment
        assert message.stop_reason == "tool_use", deployment
        assert message.usage.output_tokens > 0, deployment
        return deployment

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)


def test_every_answer_and_chunk_matches_openai_schema_whatever_the_cloud(multi):
    """SDKs are lenient parsers: what the gateway renders from other clouds' answers must match OpenAI's own
    schemas, every stream chunk included."""
    import httpx2 as httpx

    from tests.support.openai_schema import validate

    headers = {"authorization": f"Bearer {multi.key}"}
    body = {"model": "chat", "messages": ASK_WEATHER, "tools": [WEATHER], "max_tokens": 40}

    def call():
        plain = httpx.post(f"{multi.base_url}/chat/completions", json={**body, "tool_choice": "required"},
                           headers=headers, timeout=10)
        assert plain.status_code == 200, plain.text
        validate("CreateChatCompletionResponse", plain.json())
        streamed = httpx.post(f"{multi.base_url}/chat/completions", headers=headers, timeout=10,
                              json={**body, "stream": True, "stream_options": {"include_usage": True}})
        events = [line[6:] for line in streamed.text.split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))
        return plain.headers["x-skyrelay-deployment"]

    assert until_every_cloud_served(call) == set(DEPLOYMENTS)
