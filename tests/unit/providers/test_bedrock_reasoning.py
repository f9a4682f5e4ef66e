"""Converse reasoning for the models that think and are not Claude: reasoning_effort -> additionalModelRequestFields
per family (the body checked by boto3, which knows the field), and reasoningContent (whole, streamed, redacted)
-> canonical thoughts, from payloads shaped as the Converse reference documents them."""

from __future__ import annotations

import pytest

from skyrelay import errors, seals
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
    choice = parse_converse_response(data, GPT_OSS, "chatcmpl-1", "d").choices[0]
    assert choice.content == "Hello."
    sealed = seals.seal({"f": "converse", "m": GPT_OSS, "s": "c2ln"})  # Bedrock's signature, for this model only
    assert choice.thinking_blocks == [{"type": "thought", "thinking": "Let me think.", "signature": sealed}]


def test_unsigned_reasoning_becomes_a_thought_without_a_signature():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Let me think."}}}, {"text": "Hello."}]}},
        "stopReason": "end_turn"}
    assert parse_converse_response(data, R1, "c", "d").choices[0].thinking_blocks == [
        {"type": "thought", "thinking": "Let me think."}]


def test_answer_without_reasoning_has_no_thoughts():
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "stopReason": "end_turn"}
    assert parse_converse_response(data, R1, "c", "d").choices[0].thinking_blocks is None


def test_stream_reasoning_deltas_are_reasoning_chunks_and_the_signature_ends_the_thought():
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
    assert [c.thinking_block for c in chunks if c.thinking_block] == [
        {"type": "thought", "thinking": "", "signature": seals.seal({"f": "converse", "m": GPT_OSS, "s": "c2ln"})}]
    assert len(chunks) == 6  # role, two thoughts, the signed end of the thought, the text, the finish


# --- reasoning handed back -------------------------------------------------------------------------------------------

SIGNED = {"type": "thought", "thinking": "Let me think.",
          "signature": seals.seal({"f": "converse", "m": GPT_OSS, "s": "c2ln"})}
TURNS = [{"role": "user", "content": "Think first."},
         {"role": "assistant", "content": "Hello.", "tool_calls": [
             {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "t1", "content": "42"}]


def test_the_models_own_signed_reasoning_opens_its_assistant_turn_again():
    provider = BedrockProvider(deployment(model=GPT_OSS))
    built = provider.converse_body(ChatRequest(model="g", messages=TURNS, thinking={1: [SIGNED]}))
    assert built["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "c2ln"}}},
        {"text": "Hello."}, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]
    boto3_wire("converse", modelId=GPT_OSS, **built)  # boto3 takes the block as the Converse model defines it
    assert provider.hands_back(SIGNED)


@pytest.mark.parametrize("model, block", [
    (NOVA2, SIGNED),  # another model's signature
    (GPT_OSS, {"type": "thought", "thinking": "Gemini's.", "signature": seals.THOUGHT}),
    (GPT_OSS, {"type": "thought", "thinking": "unsigned"}),
    (GPT_OSS, {"type": "thinking", "thinking": "Claude's.", "signature": "c2ln"}),
    (LLAMA, SIGNED),
])
def test_reasoning_the_model_did_not_sign_stays_out_and_is_named(model, block):
    provider = BedrockProvider(deployment(model=model))
    req = ChatRequest(model="g", messages=TURNS, thinking={1: [block]})
    assert "reasoningContent" not in str(provider.converse_body(req))
    assert not provider.hands_back(block)
    assert provider.dropped_thinking(req) == ("messages.content.thinking",)
