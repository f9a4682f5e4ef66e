"""Bedrock Converse's signed reasoning on the translated Responses path: gpt-oss's thoughts come back as a `reasoning`
item whose `encrypted_content` (when included, or `store: false`) is the gateway's seal of Bedrock's signature;
handed back in a later turn (Codex's way, or a stored conversation continued by id) to a Converse deployment of the
same model, it reaches the emulated cloud as the `reasoningContent` block opening the assistant turn, with Bedrock's
own signature, which the emulator verifies. Any other cloud (another model, Claude) gets the history without it
and the gateway names it in x-skyrelay-dropped-params. Every answer and every event is checked against OpenAI's
Responses schemas."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import KEY_ID, SECRET, TIMEOUTS, validated_stream
from .test_responses_reasoning import REASONING, SEALED, streamed_reasoning_item

GPT_OSS, NOVA2, R1 = "openai.gpt-oss-120b-1:0", "us.amazon.nova-2-lite-v1:0", "us.deepseek.r1-v1:0"
CLOUDS = [{"name": "aws", "protocol": "bedrock", "api_key": None, "models": [GPT_OSS, NOVA2, R1],
           "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}},
          {"name": "claude", "protocol": "anthropic"}]
ASK = {"role": "user", "content": "Think, then answer."}
AGAIN = {"role": "user", "content": "And now?"}
DROPPED = "x-skyrelay-dropped-params"


def groups(clouds) -> dict:
    def bedrock(name, model):
        return {"deployments": [{"name": name, "kind": "bedrock", "base_url": clouds["aws"].base_url,
                                 "region": "us-east-1", "model": model, "aws_access_key_id": KEY_ID,
                                 "aws_secret_access_key": SECRET, "timeouts": TIMEOUTS}]}
    return {"gpt-oss": bedrock("aws-gpt-oss", GPT_OSS), "nova-2": bedrock("aws-nova", NOVA2),
            "r1": bedrock("aws-r1", R1),
            "claude": {"deployments": [{"name": "claude-a", "kind": "anthropic", "model": "claude-x",
                                        "base_url": clouds["claude"].base_url, "api_key": UPSTREAM_KEY,
                                        "timeouts": TIMEOUTS}]}}


stack = module_stack(CLOUDS, groups)


def sent_assistant(stack, cloud: str = "aws") -> dict:
    """The assistant turn of the conversation the emulated cloud last received."""
    return next(m for m in stack.clouds[cloud].recent_requests[-1]["body"]["messages"] if m["role"] == "assistant")


def assert_handed_back(stack, thoughts: str) -> None:
    """The assistant turn opens with the model's reasoning, text as shown and Bedrock's own signature."""
    reasoning = sent_assistant(stack)["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] == thoughts and reasoning["signature"]
    assert not reasoning["signature"].startswith("sky1.")  # Bedrock's own, out of the gateway's seal


def first_turn(stack) -> list[dict]:
    """gpt-oss's answer to ASK (store: false), as the output items Codex sends back."""
    first = stack.openai().responses.create(model="gpt-oss", input=[ASK], reasoning=REASONING, store=False)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    assert items[0]["type"] == "reasoning" and items[0]["encrypted_content"].startswith("sky1.")
    return items


@pytest.mark.parametrize("group", ["gpt-oss", "nova-2"])
def test_the_signed_reasoning_is_sealed_and_handed_back_to_the_same_model(stack, group):
    client = stack.openai()
    raw = client.responses.with_raw_response.create(model=group, input=[ASK], reasoning=REASONING,
                                                    include=SEALED)
    validate("Response", raw.http_response.json())
    item = raw.parse().output[0]
    assert item.type == "reasoning" and item.summary[0].text
    assert item.encrypted_content.startswith("sky1.")
    history = [ASK, *[i.model_dump(exclude_none=True) for i in raw.parse().output], AGAIN]
    again = client.responses.with_raw_response.create(model=group, input=history, reasoning=REASONING,
                                                      include=SEALED)
    assert again.http_response.status_code == 200  # the emulator verified Bedrock's signature
    assert DROPPED not in again.headers
    validate("Response", again.http_response.json())
    assert_handed_back(stack, item.summary[0].text)
    assert sent_assistant(stack)["content"][1] == {"text": raw.parse().output_text}


def test_the_streamed_reasoning_is_sealed_and_handed_back_streamed(stack):
    events = validated_stream(stack, {"model": "gpt-oss", "input": [ASK], "reasoning": REASONING, "store": False})
    item = streamed_reasoning_item(events)
    assert item["encrypted_content"].startswith("sky1.")
    history = [ASK, *events[-1]["response"]["output"], AGAIN]
    validated_stream(stack, {"model": "gpt-oss", "input": history, "reasoning": REASONING, "store": False})
    assert_handed_back(stack, item["summary"][0]["text"])


def test_the_sdk_stream_and_async_client_round_trip(stack):
    async def run():
        client = stack.async_openai()
        events = [e async for e in await client.responses.create(
            model="gpt-oss", input=[ASK], reasoning=REASONING, store=False, stream=True)]
        final = events[-1].response
        assert final.output[0].type == "reasoning" and final.output[0].encrypted_content
        history = [ASK, *[item.model_dump(exclude_none=True) for item in final.output], AGAIN]
        raw = await client.responses.with_raw_response.create(model="gpt-oss", input=history, reasoning=REASONING,
                                                              store=False)
        assert DROPPED not in raw.headers and raw.parse().output_text
        await client.close()
        return final.output[0].summary[0].text

    assert_handed_back(stack, asyncio.run(run()))


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_turn_continued_by_id_hands_the_reasoning_back(stack, stream):
    """store: true without include: the client sees no encrypted_content, the stored conversation keeps it."""
    client = stack.openai()
    if stream:
        with client.responses.stream(model="gpt-oss", input=[ASK], reasoning=REASONING) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model="gpt-oss", input=[ASK], reasoning=REASONING)
    assert first.output[0].type == "reasoning" and first.output[0].encrypted_content is None
    raw = client.responses.with_raw_response.create(model="gpt-oss", previous_response_id=first.id,
                                                    reasoning=REASONING, input=[AGAIN])
    assert raw.http_response.status_code == 200 and DROPPED not in raw.headers
    assert_handed_back(stack, first.output[0].summary[0].text)


@pytest.mark.parametrize("group, cloud", [("nova-2", "aws"), ("claude", "claude")])
def test_another_clouds_reasoning_is_left_out_and_named(stack, group, cloud):
    items = first_turn(stack)
    raw = stack.openai().responses.with_raw_response.create(model=group, input=[ASK, *items, AGAIN], store=False)
    assert raw.http_response.status_code == 200  # Claude's emulator would refuse a block it did not sign
    assert raw.headers[DROPPED] == "input.reasoning"
    validate("Response", raw.http_response.json())
    assistant = sent_assistant(stack, cloud)
    assert "reasoningContent" not in str(assistant) and "thinking" not in str(assistant)


def test_unsigned_reasoning_is_sealed_into_nothing(stack):
    response = stack.openai().responses.create(model="r1", input=[ASK], reasoning=REASONING, store=False)
    assert response.output[0].type == "reasoning" and response.output[0].summary
    assert response.output[0].encrypted_content is None  # DeepSeek-R1 signs nothing: no cloud takes it back
