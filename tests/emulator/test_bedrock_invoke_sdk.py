"""Bedrock's InvokeModel for Claude (Anthropic's Messages body), judged by boto3's `invoke_model` and
`invoke_model_with_response_stream`: SigV4-signed, the stream an event stream of base64 Messages events, prompt
caching and thinking signatures as on Anthropic's API, extraneous keys refused as Bedrock refuses them."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from skyrelay.emulator import CloudSpec, start_cloud

MODEL = "us.anthropic.claude-opus-4-5-20251101-v1:0"
KEY_ID, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1"
SYSTEM = [{"type": "text", "text": "You are a coding agent. " * 250, "cache_control": {"type": "ephemeral"}}]


@pytest.fixture(scope="module")
def cloud(bg):
    spec = CloudSpec(name="bedrock-invoke", protocol="bedrock", models=[MODEL], ttft_ms=1, tokens_per_second=0,
                     options={"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": REGION})
    c = bg.run(start_cloud(spec))
    yield c
    bg.run(c.stop())


@pytest.fixture
def runtime(cloud):
    return boto3.client("bedrock-runtime", endpoint_url=cloud.base_url, region_name=REGION, aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET, config=Config(retries={"total_max_attempts": 1}))


def body(**fields) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 2048,
                       "messages": [{"role": "user", "content": "hello"}], **fields})


def test_invoke_model_answers_a_message_with_cache_usage(runtime):
    first = json.loads(runtime.invoke_model(modelId=MODEL, body=body(system=SYSTEM))["body"].read())
    assert first["type"] == "message" and first["content"][0]["type"] == "text"
    assert first["usage"]["cache_creation_input_tokens"] > 1000
    again = json.loads(runtime.invoke_model(modelId=MODEL, body=body(system=SYSTEM))["body"].read())
    assert again["usage"]["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"]


def test_streamed_invoke_carries_messages_events_and_signed_thinking(runtime):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    answer = runtime.invoke_model_with_response_stream(
        modelId=MODEL, body=body(thinking=thinking, anthropic_beta=["interleaved-thinking-2025-05-14"]))
    events = [json.loads(e["chunk"]["bytes"]) for e in answer["body"]]  # boto3 decodes the base64 blob
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-1]["type"] == "message_stop" and "amazon-bedrock-invocationMetrics" in events[-1]
    signature = "".join(e["delta"]["signature"] for e in events
                        if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta")
    text = "".join(e["delta"].get("thinking", "") for e in events if e["type"] == "content_block_delta")
    history = [{"role": "user", "content": "hello"},
               {"role": "assistant", "content": [{"type": "thinking", "thinking": text, "signature": signature}]},
               {"role": "user", "content": "and?"}]
    assert json.loads(runtime.invoke_model(modelId=MODEL, body=body(messages=history, thinking=thinking))[
        "body"].read())["content"]
    history[1]["content"][0]["signature"] = "forged"
    with pytest.raises(ClientError, match="Invalid `signature`"):
        runtime.invoke_model(modelId=MODEL, body=body(messages=history, thinking=thinking))


@pytest.mark.parametrize("fields,message", [
    ({"metadata": {"user_id": "u"}}, "extraneous key [metadata] is not permitted"),
    ({"anthropic_version": "2023-06-01"}, "anthropic_version: must be"),
])
def test_what_bedrock_refuses(runtime, fields, message):
    with pytest.raises(ClientError, match="ValidationException") as info:
        runtime.invoke_model(modelId=MODEL, body=body(**fields))
    assert message in str(info.value)
