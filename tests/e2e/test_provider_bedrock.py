"""The official openai SDK -> the gateway -> the Bedrock provider -> an emulated Bedrock (SigV4 checked, binary
event streams): non-stream, stream, tools, an image, and Bedrock's errors mapped to the right OpenAI errors."""

from __future__ import annotations

import json

import openai
import pytest

from skyrelay.emulator.protocols import PROTOCOLS

from .harness import start_stack
from .throttling import assert_throttle_cools_down_briefly

if "bedrock" not in PROTOCOLS:
    pytest.skip("the emulator does not speak bedrock yet", allow_module_level=True)

KEY_ID, SECRET = "AKIDE2EBEDROCK", "e2e-bedrock-secret"
MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"  # ':' in the id: percent-encoded on the wire
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def bedrock_groups(secret: str = SECRET):
    def groups(clouds):
        return {"claude": {"deployments": [{
            "name": "aws-east", "kind": "bedrock", "base_url": clouds["aws"].base_url, "region": "us-east-1",
            "model": MODEL, "aws_access_key_id": KEY_ID, "aws_secret_access_key": secret,
            "timeouts": {"connect": 1, "first_byte": 3, "total": 10}}]}}
    return groups


def bedrock_cloud():
    return [{"name": "aws", "protocol": "bedrock", "api_key": None,
             "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}}]


@pytest.fixture(scope="module")
def aws(bg):
    stack = start_stack(bg, bedrock_cloud(), bedrock_groups())
    yield stack
    stack.close()


def test_chat(aws):
    raw = aws.openai().chat.completions.with_raw_response.create(model="claude", messages=HELLO, max_tokens=50)
    assert raw.headers["x-skyrelay-deployment"] == "aws-east"
    resp = raw.parse()
    assert resp.model == MODEL
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_stream_with_usage(aws):
    stream = aws.openai().chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *HELLO], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_tool_call_and_tool_result_round_trip(aws):
    client = aws.openai()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER],
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'}]
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


def test_streamed_tool_call(aws):
    stream = aws.openai().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or ()) if chunk.choices else ():
            call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or delta.id
            call["name"] = call["name"] or (delta.function.name if delta.function else None)
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert isinstance(json.loads(calls[0]["arguments"]), dict)


def test_inline_image(aws):
    resp = aws.openai().chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert resp.choices[0].message.content


def test_image_url_is_refused_naming_the_deployment(aws):
    with pytest.raises(openai.BadRequestError) as caught:
        aws.openai().chat.completions.create(model="claude", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "aws-east" in str(caught.value) and "bedrock" in str(caught.value)


def test_unsupported_parameter_is_refused(aws):
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        aws.openai().chat.completions.create(model="claude", messages=HELLO, logprobs=True)


def test_throttling_becomes_429(make_stack):
    stack = make_stack(cloud_specs=bedrock_cloud(), groups=bedrock_groups())
    stack.set_faults("aws", [{"kind": "status", "status": 429}])
    with pytest.raises(openai.RateLimitError):
        stack.openai().chat.completions.create(model="claude", messages=HELLO)


def test_throttling_cools_the_deployment_down_for_a_second_doubling_not_for_the_breakers_30s(make_stack):
    """Bedrock's ThrottlingException carries no Retry-After: a throttle, not an outage."""
    stack = make_stack(cloud_specs=bedrock_cloud(), groups=bedrock_groups())
    assert_throttle_cools_down_briefly(stack, "aws", "aws-east", "claude", "ThrottlingException")


def test_stream_failing_to_start_becomes_an_error_status(make_stack):
    stack = make_stack(cloud_specs=bedrock_cloud(), groups=bedrock_groups())
    stack.set_faults("aws", [{"kind": "status", "status": 503}])
    with pytest.raises(openai.InternalServerError) as caught:
        list(stack.openai().chat.completions.create(model="claude", messages=HELLO, stream=True))
    assert caught.value.status_code == 503


def test_wrong_secret_is_reported_without_the_secret(make_stack):
    stack = make_stack(cloud_specs=bedrock_cloud(), groups=bedrock_groups(secret="not-the-right-secret"))
    with pytest.raises(openai.APIStatusError) as caught:
        stack.openai().chat.completions.create(model="claude", messages=HELLO)
    assert caught.value.status_code == 502
    assert "signature" in str(caught.value).lower()
    assert "not-the-right-secret" not in str(caught.value)


def test_exception_frame_right_after_message_start_fails_over_invisibly(make_stack):
    """Bedrock may start a stream and then throttle it: nothing reached the client, so the next deployment
    (here: the same cloud, a second deployment) serves the stream as if nothing happened."""
    cloud = bedrock_cloud()
    cloud[0]["options"]["stream_errors"] = "frame"

    def two_deployments(clouds):
        group = bedrock_groups()(clouds)
        first = group["claude"]["deployments"][0]
        group["claude"]["deployments"].append({**first, "name": "aws-west"})
        return group

    stack = make_stack(cloud_specs=cloud, groups=two_deployments)
    stack.set_faults("aws", [{"kind": "status", "status": 429, "at": [1]}])
    raw = stack.openai().chat.completions.with_raw_response.create(model="claude", messages=HELLO, stream=True)
    assert raw.headers["x-skyrelay-attempts"] == "2"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_stream_cut_mid_way_raises_in_the_sdk(make_stack):
    stack = make_stack(cloud_specs=bedrock_cloud(), groups=bedrock_groups())
    stack.set_faults("aws", [{"kind": "cut_stream", "after_chunks": 3}])
    with pytest.raises(openai.APIError):
        list(stack.openai().chat.completions.create(model="claude", messages=HELLO, stream=True))


def test_bedrock_validation_error_reaches_the_client_as_400(make_stack):
    cloud = bedrock_cloud()
    cloud[0]["models"] = ["anthropic.claude-3-haiku-20240307-v1:0"]  # the deployment's model is not served here
    stack = make_stack(cloud_specs=cloud, groups=bedrock_groups())
    with pytest.raises(openai.BadRequestError, match="model identifier is invalid"):
        stack.openai().chat.completions.create(model="claude", messages=HELLO)


def test_max_tokens_cuts_with_length(aws):
    resp = aws.openai().chat.completions.create(model="claude", messages=HELLO, max_tokens=2)
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 2


def test_bedrock_api_key(make_stack):
    api_key = "ABSKZTJlLWJlZHJvY2sta2V5"
    cloud = [{"name": "aws", "protocol": "bedrock", "api_key": api_key}]

    def groups(key):
        def build(clouds):
            return {"claude": {"deployments": [{
                "name": "aws-key", "kind": "bedrock", "base_url": clouds["aws"].base_url, "region": "us-east-1",
                "model": MODEL, "api_key": key}]}}
        return build

    stack = make_stack(cloud_specs=cloud, groups=groups(api_key))
    assert stack.openai().chat.completions.create(model="claude", messages=HELLO).choices[0].message.content
    wrong = make_stack(cloud_specs=cloud, groups=groups("ABSKbm90LXRoaXMtb25l"))
    with pytest.raises(openai.APIStatusError) as caught:
        wrong.openai().chat.completions.create(model="claude", messages=HELLO)
    assert caught.value.status_code == 502 and "ABSKbm90LXRoaXMtb25l" not in str(caught.value)
