"""The gateway in front of emulated Azure OpenAI resources, driven with the official openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from .harness import UPSTREAM_KEY, start_stack

HELLO = [{"role": "user", "content": "hello"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def azure_deployment(name: str, cloud, **extra) -> dict:
    deployment = {"name": name, "kind": "azure", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY,
                  "model": "gpt4o-prod", "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}
    deployment.update(extra)
    return deployment


def azure_groups(clouds: dict) -> dict:
    return {
        "chat": {"deployments": [azure_deployment(name, cloud) for name, cloud in clouds.items()]},
        "embed": {"deployments": [azure_deployment(f"{name}-embed", cloud, model="embed-small")
                                  for name, cloud in clouds.items()]},
    }


AZURE_CLOUDS = [
    {"name": "az-east", "protocol": "azure",
     "deployments": [{"name": "gpt4o-prod", "model": "gpt-4o"},
                     {"name": "embed-small", "model": "text-embedding-3-small"}]},
]


@pytest.fixture(scope="module")
def azure_stack(bg):
    stack = start_stack(bg, AZURE_CLOUDS, groups=azure_groups)
    yield stack
    stack.close()


def test_chat(azure_stack):
    raw = azure_stack.openai().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert reply.model == "gpt-4o"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert raw.headers["x-skyrelay-deployment"] == "az-east"
    sent = azure_stack.clouds["az-east"].recent_requests[-1]
    assert sent["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"


def test_stream_with_usage(azure_stack):
    chunks = list(azure_stack.openai().chat.completions.create(
        model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].id  # Azure's choice-less prompt-filter chunk (empty id) is not forwarded
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tools(azure_stack):
    reply = azure_stack.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL], tool_choice="required")
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


def test_image(azure_stack):
    reply = azure_stack.openai().chat.completions.create(model="chat", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert reply.choices[0].message.content


def test_embeddings(azure_stack):
    reply = azure_stack.openai().embeddings.create(model="embed", input=["one", "two"])
    assert len(reply.data) == 2 and reply.usage.prompt_tokens > 0
    assert azure_stack.clouds["az-east"].recent_requests[-1]["path"] == "/openai/deployments/embed-small/embeddings"


def test_prompt_content_filter_is_a_400_with_its_code(azure_stack):
    azure_stack.set_faults("az-east", [{"kind": "content_filter", "target": "prompt", "times": 1}])
    try:
        with pytest.raises(openai.BadRequestError) as info:
            azure_stack.openai().chat.completions.create(model="chat", messages=HELLO)
    finally:
        azure_stack.clear_faults("az-east")
    assert info.value.code == "content_filter"
    assert "content filter" in info.value.message


def test_output_content_filter_passes_through_as_finish_reason(azure_stack):
    azure_stack.set_faults("az-east", [{"kind": "content_filter", "target": "output", "times": 2}])
    try:
        reply = azure_stack.openai().chat.completions.create(model="chat", messages=HELLO)
        chunks = list(azure_stack.openai().chat.completions.create(model="chat", messages=HELLO, stream=True))
    finally:
        azure_stack.clear_faults("az-east")
    assert reply.choices[0].finish_reason == "content_filter"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"]


def test_throttled_resource_fails_over_to_the_other(make_stack):
    clouds = [{**AZURE_CLOUDS[0], "name": "az-east"}, {**AZURE_CLOUDS[0], "name": "az-west"}]
    stack = make_stack(cloud_specs=clouds, groups=azure_groups)
    stack.set_faults("az-east", [{"status": 429, "retry_after": 3}])
    for _ in range(3):  # whichever is tried first, az-west answers; az-east then cools down for its Retry-After
        raw = stack.openai().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert raw.headers["x-skyrelay-deployment"] == "az-west"
    stack.set_faults("az-west", [{"status": 429, "retry_after": 2}])
    with pytest.raises(openai.RateLimitError) as info:
        stack.openai().chat.completions.create(model="chat", messages=HELLO)
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 3


def test_bearer_token_from_file(make_stack, tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJ.entra-token\n")

    def groups(clouds):
        d = azure_deployment("az-east", clouds["az-east"], api_key=None, azure_ad_token_file=str(token))
        return {"chat": {"deployments": [d]}}

    stack = make_stack(cloud_specs=AZURE_CLOUDS, groups=groups)
    assert stack.openai().chat.completions.create(model="chat", messages=HELLO).choices[0].message.content
    sent = stack.clouds["az-east"].recent_requests[-1]["headers"]
    assert "authorization" in sent and "api-key" not in sent
