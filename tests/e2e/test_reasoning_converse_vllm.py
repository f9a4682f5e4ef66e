"""Reasoning of the models that are neither Claude nor Gemini, through the gateway: Bedrock Converse's
`reasoningContent` (DeepSeek-R1, gpt-oss) and an OpenAI-compatible reasoning server's `reasoning_content` (vLLM).
Their thoughts become a Responses `reasoning` item (a summary when asked; sealed only when the model signed it,
gpt-oss: test_responses_reasoning_converse.py), and chat completions leave them out (no empty delta in a
stream); an Anthropic client that asks for thinking gets them as thinking blocks
(test_anthropic_thinking_other_clouds.py). `reasoning.effort` reaches gpt-oss as its `reasoning_effort` field. The real openai and anthropic SDKs drive the gateway; OpenAI-shaped answers and
events are checked against the spec."""

from __future__ import annotations

import json

import anthropic
import httpx2 as httpx
import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import TIMEOUTS, validated_stream
from .test_responses_reasoning import streamed_reasoning_item

R1, GPT_OSS, VLLM_R1 = "us.deepseek.r1-v1:0", "openai.gpt-oss-120b-1:0", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
CLOUDS = [{"name": "aws", "protocol": "bedrock", "api_key": None, "models": [R1, GPT_OSS]},
          {"name": "vllm", "protocol": "openai", "models": [VLLM_R1], "options": {"reasoning_models": [VLLM_R1]}}]
ASK = "Think, then answer."
SUMMARY = {"summary": "auto"}


def groups(clouds) -> dict:
    def bedrock(name, model):
        return {"deployments": [{"name": name, "kind": "bedrock", "base_url": clouds["aws"].base_url,
                                 "region": "us-east-1", "model": model, "aws_access_key_id": "AKIDE2E",
                                 "aws_secret_access_key": "secret", "timeouts": TIMEOUTS}]}
    return {"r1": bedrock("aws-r1", R1), "gpt-oss": bedrock("aws-gpt-oss", GPT_OSS),
            "vllm": {"deployments": [{"name": "vllm-r1", "kind": "openai", "base_url": clouds["vllm"].base_url,
                                      "api_key": UPSTREAM_KEY, "model": VLLM_R1, "responses": "translate",
                                      "shows_reasoning": True,
                                      "timeouts": TIMEOUTS}]}}


stack = module_stack(CLOUDS, groups)


def post_to(stack, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", json=body, timeout=10,
                      headers={"authorization": f"Bearer {stack.key}"})


def sent(stack, cloud: str) -> dict:
    return stack.clouds[cloud].recent_requests[-1]["body"]


@pytest.mark.parametrize("group", ["r1", "gpt-oss", "vllm"])
def test_thoughts_become_a_reasoning_item_with_its_summary(stack, group):
    raw = stack.openai().responses.with_raw_response.create(model=group, input=ASK, reasoning=SUMMARY,
                                                            include=["reasoning.encrypted_content"])
    validate("Response", raw.http_response.json())
    assert "x-skyrelay-dropped-params" not in raw.headers  # the summary is these clouds' to give
    response = raw.parse()
    item, message = response.output
    assert item.type == "reasoning" and message.type == "message" and response.output_text
    assert item.summary and item.summary[0].text and item.summary[0].text not in response.output_text
    if group == "gpt-oss":  # signed: sealed for the same model (test_responses_reasoning_converse.py)
        assert item.encrypted_content.startswith("sky1.")
    else:
        assert item.encrypted_content is None  # nothing a cloud could take back


def test_without_a_summary_the_item_is_empty(stack):
    response = stack.openai().responses.create(model="r1", input=ASK)
    assert [i.type for i in response.output] == ["reasoning", "message"]
    assert response.output[0].summary == []


@pytest.mark.parametrize("group", ["gpt-oss", "vllm"])
def test_the_stream_carries_the_reasoning_summary_events(stack, group):
    events = validated_stream(stack, {"model": group, "input": ASK, "reasoning": SUMMARY})
    item = streamed_reasoning_item(events)
    assert item["encrypted_content"] is None
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]


def test_effort_reaches_gpt_oss_and_is_refused_where_it_cannot_be_honoured(stack):
    stack.openai().responses.create(model="gpt-oss", input=ASK, reasoning={"effort": "high"})
    assert sent(stack, "aws")["additionalModelRequestFields"] == {"reasoning_effort": "high"}
    stack.openai().chat.completions.create(model="r1", messages=[{"role": "user", "content": ASK}],
                                           reasoning_effort="low")
    assert "additionalModelRequestFields" not in sent(stack, "aws")  # R1 always reasons, takes no setting
    refused = stack.openai().chat.completions.with_raw_response.create
    with pytest.raises(Exception) as caught:
        refused(model="r1", messages=[{"role": "user", "content": ASK}], reasoning_effort="none")
    assert caught.value.status_code == 400 and "reasoning_effort" in str(caught.value)


@pytest.mark.parametrize("group", ["r1", "vllm"])
def test_chat_completions_leave_the_thoughts_out_of_the_stream(stack, group):
    resp = post_to(stack, "/chat/completions",
                   {"model": group, "messages": [{"role": "user", "content": ASK}], "stream": True})
    assert resp.status_code == 200, resp.text
    events = [line[6:] for line in resp.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    if group == "r1":  # translated: no chunk that says nothing
        assert all(c["choices"][0]["delta"] or c["choices"][0]["finish_reason"] for c in chunks if c["choices"])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text


def test_openai_usage_reasoning_tokens_reach_the_responses_usage(stack):
    response = stack.openai().responses.create(model="vllm", input=ASK)
    details = response.usage.output_tokens_details
    assert 0 < details.reasoning_tokens < response.usage.output_tokens


def test_anthropic_client_gets_the_thoughts_as_a_thinking_block(stack):
    client = anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)
    message = client.messages.create(model="r1", max_tokens=2000, messages=[{"role": "user", "content": ASK}],
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in message.content] == ["thinking", "text"] and message.content[1].text
