"""Converse reasoning (`reasoningContent`) from the emulator's Bedrock API, judged by boto3's converse /
converse_stream: DeepSeek-R1 (always thinks, unsigned), gpt-oss (`reasoning_effort`, signed), Nova 2
(`reasoningConfig`, only when enabled)."""

from __future__ import annotations

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from skyrelay.emulator import CloudSpec, start_cloud

R1, GPT_OSS, NOVA2, NOVA1 = "us.deepseek.r1-v1:0", "openai.gpt-oss-120b-1:0", "us.amazon.nova-2-lite-v1:0", \
    "amazon.nova-lite-v1:0"
HI = [{"role": "user", "content": [{"text": "Hello there, think first."}]}]


@pytest.fixture(scope="module")
def cloud(bg):
    spec = CloudSpec(name="bedrock-reasoning", protocol="bedrock", models=[R1, GPT_OSS, NOVA2, NOVA1], ttft_ms=1,
                     tokens_per_second=0, seed=5)
    cloud = bg.run(start_cloud(spec))
    yield cloud
    bg.run(cloud.stop())


@pytest.fixture
def client(cloud):
    return boto3.client("bedrock-runtime", endpoint_url=cloud.base_url, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))


def test_deepseek_r1_answers_with_unsigned_reasoning_first(client):
    out = client.converse(modelId=R1, messages=HI)
    content = out["output"]["message"]["content"]
    text = content[0]["reasoningContent"]["reasoningText"]
    assert text["text"] and "signature" not in text
    assert content[1]["text"]
    assert out["usage"]["outputTokens"] > 0
    assert out["usage"]["totalTokens"] == out["usage"]["inputTokens"] + out["usage"]["outputTokens"]


def test_gpt_oss_signs_and_takes_an_effort(client):
    low = client.converse(modelId=GPT_OSS, messages=HI, additionalModelRequestFields={"reasoning_effort": "low"})
    high = client.converse(modelId=GPT_OSS, messages=HI, additionalModelRequestFields={"reasoning_effort": "high"})
    low_text = low["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    high_text = high["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    assert low_text["signature"] and high_text["signature"]
    assert low["usage"]["outputTokens"] < high["usage"]["outputTokens"]
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=GPT_OSS, messages=HI, additionalModelRequestFields={"reasoning_effort": "max"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_nova_2_thinks_only_when_enabled_and_older_models_never(client):
    plain = client.converse(modelId=NOVA2, messages=HI)
    assert "reasoningContent" not in plain["output"]["message"]["content"][0]
    enabled = {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}
    thinking = client.converse(modelId=NOVA2, messages=HI, additionalModelRequestFields=enabled)
    assert "reasoningContent" in thinking["output"]["message"]["content"][0]
    older = client.converse(modelId=NOVA1, messages=HI, additionalModelRequestFields=enabled)
    assert "reasoningContent" not in older["output"]["message"]["content"][0]


def test_stream_sends_reasoning_deltas_then_the_signature_then_the_text(client):
    whole = client.converse(modelId=GPT_OSS, messages=HI)
    events = list(client.converse_stream(modelId=GPT_OSS, messages=HI)["stream"])
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    thinking = [d["delta"]["reasoningContent"] for d in deltas if "reasoningContent" in d["delta"]]
    assert all(d["contentBlockIndex"] == 0 for d in deltas if "reasoningContent" in d["delta"])
    assert thinking[-1].keys() == {"signature"}
    reasoning = whole["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    assert "".join(t.get("text", "") for t in thinking) == reasoning["text"]
    assert thinking[-1]["signature"] == reasoning["signature"]
    text = "".join(d["delta"]["text"] for d in deltas if "text" in d["delta"])
    assert text == whole["output"]["message"]["content"][1]["text"]
    assert all(d["contentBlockIndex"] == 1 for d in deltas if "text" in d["delta"])
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert usage["outputTokens"] == whole["usage"]["outputTokens"]


def test_signed_reasoning_handed_back_is_verified(client):
    first = client.converse(modelId=GPT_OSS, messages=HI)
    reply = first["output"]["message"]
    follow = [*HI, reply, {"role": "user", "content": [{"text": "And then?"}]}]
    assert client.converse(modelId=GPT_OSS, messages=follow)["output"]["message"]["content"]
    altered = {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {**reply["content"][0]["reasoningContent"]["reasoningText"],
                                                "text": "something else"}}}, *reply["content"][1:]]}
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=GPT_OSS, messages=[*HI, altered, follow[-1]])
    assert "signature" in caught.value.response["Error"]["Message"]


def test_deepseek_takes_no_reasoning_settings(client):
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=R1, messages=HI, additionalModelRequestFields={"reasoning_effort": "low"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
