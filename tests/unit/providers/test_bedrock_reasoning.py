"""Converse reasoning for the models that think and are not Claude: reasoning_effort -> additionalModelRequestFields
per family (the body checked by boto3, which knows the field), and reasoningContent (whole, streamed, redacted)
-> canonical thoughts, from payloads shaped as the Converse reference documents them."""

from __future__ import annotations

import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest
from skyrelay.providers.bedrock import BedrockProvider
from skyrelay.providers.bedrock.request import build_converse_body
from skyrelay.providers.bedrock.response import parse_converse_response
from skyrelay.providers.bedrock.stream import ConverseStreamDecoder

from tests.unit.providers.test_bedrock import boto3_wire, deployment, event

HI = [{"role": "user", "content": "Think first."}]
R1, GPT_OSS, NOVA2, LLAMA = "us.deepseek.r1-v1:0", "openai.gpt-oss-20b-1:0", "us.amazon.nova-2-lite-v1:0", \
    "meta.llama3-70b-instruct-v1:0"


def body(model: str, effort):
    provider = BedrockProvider(deployment(model=model))
    return provider.converse_body(ChatRequest(model="g", messages=HI, extra={"reasoning_effort": effort}))


@pytest.mark.parametrize("model, effort, fields", [
    (GPT_OSS, "high", {"reasoning_effort": "high"}),
    (GPT_OSS, "minimal", {"reasoning_effort": "low"}),
    (NOVA2, "medium", {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}),
    (NOVA2, "none", None),
    (R1, "low", None),  # R1 always reasons and takes no setting
])
def test_effort_becomes_the_families_own_field(model, effort, fields):
    built = body(model, effort)
    assert built.get("additionalModelRequestFields") == fields
    _, sent = boto3_wire("converse", modelId=model, **built)  # boto3 takes the body as it is
    assert sent.get("additionalModelRequestFields") == fields


@pytest.mark.parametrize("model, effort", [(R1, "none"), (GPT_OSS, "none"), (GPT_OSS, "max"), (LLAMA, "low")])
def test_effort_a_model_cannot_honour_is_refused_by_name(model, effort):
    with pytest.raises(errors.UnsupportedFeature) as caught:
        body(model, effort)
    assert caught.value.param == "reasoning_effort"


def test_claude_on_bedrock_is_not_a_converse_reasoner():
    provider = BedrockProvider(deployment())
    assert provider.reasons is None and not provider.shows_thoughts
    assert BedrockProvider(deployment(model=R1)).shows_thoughts


def test_plain_request_has_no_reasoning_fields():
    assert "additionalModelRequestFields" not in build_converse_body(ChatRequest(model="g", messages=HI), "d",
                                                                     reasons="gpt-oss")


def test_whole_answer_reasoning_becomes_a_thought_and_redacted_content_is_not_shown():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "c2ln"}}},
        {"reasoningContent": {"redactedContent": "c2VjcmV0"}},
        {"text": "Hello."}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 9, "totalTokens": 14}}
    choice = parse_converse_response(data, R1, "chatcmpl-1", "d").choices[0]
    assert choice.content == "Hello."
    assert choice.thinking_blocks == [{"type": "thought", "thinking": "Let me think."}]


def test_answer_without_reasoning_has_no_thoughts():
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "stopReason": "end_turn"}
    assert parse_converse_response(data, R1, "c", "d").choices[0].thinking_blocks is None


def test_stream_reasoning_deltas_are_reasoning_chunks_and_the_signature_is_not():
    decoder = ConverseStreamDecoder("chatcmpl-1", GPT_OSS, "d")
    chunks = decoder.feed(b"".join([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm, "}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "yes."}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "c2ln"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0,
                                    "delta": {"reasoningContent": {"redactedContent": "eA=="}}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hello."}}),
        event("messageStop", {"stopReason": "end_turn"}),
    ]))
    assert chunks[0].role == "assistant"
    assert [c.reasoning for c in chunks if c.reasoning] == ["Hmm, ", "yes."]
    assert [c.content for c in chunks if c.content] == ["Hello."]
    assert len(chunks) == 5  # role, two thoughts, the text, the finish
