"""Reasoning on the translated Responses path: `reasoning: {effort, summary}` becomes Claude's extended thinking on
Anthropic's API, on Vertex AI and on Bedrock (InvokeModel), the thoughts come back as a `reasoning` item (summary when asked,
the signed thinking sealed in `encrypted_content` when included or `store: false`), streamed with the reasoning
summary events; a later turn that hands the item back reaches the emulated cloud as a thinking block whose
signature the cloud verifies. Every answer and every event is checked against OpenAI's Responses schemas."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import KEY_ID, SECRET, TIMEOUTS, WEATHER, post, validated_stream

CLOUDS = [
    {"name": "anthropic", "protocol": "anthropic"},
    {"name": "aws", "protocol": "bedrock", "api_key": None,
     "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}},
    {"name": "openai", "protocol": "openai"},
    {"name": "vertex", "protocol": "vertex_anthropic", "models": ["claude-sonnet-4-5@20250929"],
     "options": {"project": "proj-1", "location": "us-east5"}},
]
REASONING = {"effort": "low", "summary": "auto"}
SEALED = ["reasoning.encrypted_content"]
# group -> (cloud, the path a thinking request reaches there)
PATHS = {"anthropic": ("anthropic", "/v1/messages"),
         "bedrock": ("aws", "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke"),
         "vertex": ("vertex", "/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5")}
CLAUDES = list(PATHS)


def groups(clouds) -> dict:
    return {
        "anthropic": {"deployments": [{"name": "claude-direct", "kind": "anthropic", "api_key": UPSTREAM_KEY,
                                       "base_url": clouds["anthropic"].base_url, "model": "claude-sonnet-4-20250514",
                                       "timeouts": TIMEOUTS}]},
        "bedrock": {"deployments": [{"name": "claude-bedrock", "kind": "bedrock", "base_url": clouds["aws"].base_url,
                                     "region": "us-east-1", "model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
                                     "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
                                     "timeouts": TIMEOUTS}]},
        "vertex": {"deployments": [{"name": "claude-vertex", "kind": "vertex_anthropic", "api_key": UPSTREAM_KEY,
                                    "base_url": clouds["vertex"].base_url, "model": "claude-sonnet-4-5@20250929",
                                    "project": "proj-1", "location": "us-east5", "timeouts": TIMEOUTS}]},
        "chat": {"deployments": [{"name": "vllm", "kind": "openai", "base_url": clouds["openai"].base_url,
                                  "model": "gpt-4o-mini", "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS,
                                  "responses": "translate"}]},
    }


stack = module_stack(CLOUDS, groups)


def sent(stack, group: str) -> dict:
    cloud, path = PATHS[group]
    seen = stack.clouds[cloud].recent_requests[-1]
    assert seen["path"].startswith(path), seen["path"]
    return seen["body"]


@pytest.mark.parametrize("group", CLAUDES)
def test_effort_becomes_thinking_and_the_thoughts_a_reasoning_item(stack, group):
    client = stack.openai()
    raw = client.responses.with_raw_response.create(model=group, input="Think, then answer.", reasoning=REASONING,
                                                    include=SEALED)
    validate("Response", raw.http_response.json())
    assert "x-skyrelay-dropped-params" not in raw.headers
    body = sent(stack, group)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and body["max_tokens"] > 1024
    response = raw.parse()
    item, message = response.output[0], response.output[1]
    assert item.type == "reasoning" and item.id.startswith("rs_") and message.type == "message"
    assert item.summary and item.summary[0].type == "summary_text" and item.summary[0].text
    assert item.encrypted_content and item.encrypted_content.startswith("sky1.")
    assert response.output_text

    plain = client.responses.create(model=group, input="Think, then answer.", reasoning={"effort": "low"})
    assert plain.output[0].type == "reasoning" and plain.output[0].summary == []
    assert plain.output[0].encrypted_content is None  # stored, and nothing included: nothing sealed


@pytest.mark.parametrize("group", CLAUDES)
def test_the_reasoning_item_handed_back_reaches_the_cloud_as_its_signed_thinking(stack, group):
    """Codex's way: store false, the output items (reasoning included) sent back in the next turn's input."""
    client = stack.openai()
    ask = {"role": "user", "content": "What is the weather in Lisbon?"}
    first = client.responses.create(model=group, input=[ask], tools=[WEATHER], reasoning=REASONING, store=False)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    assert items[0]["type"] == "reasoning" and items[0]["encrypted_content"]
    call = next(item for item in items if item["type"] == "function_call")
    history = [ask, *items, {"type": "function_call_output", "call_id": call["call_id"], "output": "21 C"}]
    raw = client.responses.with_raw_response.create(model=group, input=history, tools=[WEATHER],
                                                    reasoning=REASONING, store=False)
    assert raw.http_response.status_code == 200  # the cloud verified the signature (it refuses a wrong one)
    assert "x-skyrelay-dropped-params" not in raw.headers
    validate("Response", raw.http_response.json())
    assistant = next(m for m in sent(stack, group)["messages"] if m["role"] == "assistant")
    thinking = assistant["content"][0]
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert thinking["thinking"] == items[0]["summary"][0]["text"]
    assert assistant["content"][-1]["type"] == "tool_use"


def test_an_altered_thought_is_refused_by_the_cloud(stack):
    client = stack.openai()
    first = client.responses.create(model="anthropic", input="Think.", reasoning=REASONING, store=False)
    item = first.output[0].model_dump(exclude_none=True)
    from skyrelay.protocols.responses.reasoning import seal, unseal
    blocks = unseal(item["encrypted_content"])
    blocks[0]["thinking"] += " (edited)"
    item["encrypted_content"] = seal(blocks)
    history = [{"role": "user", "content": "Think."}, item, first.output[1].model_dump(exclude_none=True),
               {"role": "user", "content": "Again."}]
    raw = post(stack, {"model": "anthropic", "input": history, "reasoning": REASONING, "store": False})
    assert raw.status_code == 400 and "signature" in raw.json()["error"]["message"]


@pytest.mark.parametrize("group", CLAUDES)
def test_the_stream_carries_the_reasoning_summary_events(stack, group):
    events = validated_stream(stack, {"model": group, "input": "Think, then answer.", "reasoning": REASONING,
                                      "include": SEALED})
    item = streamed_reasoning_item(events)
    assert item["encrypted_content"].startswith("sky1.")
    message = [e for e in events if e["type"] == "response.output_item.added"][1]
    assert message["item"]["type"] == "message" and message["output_index"] == 1
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]


@pytest.mark.parametrize("group", CLAUDES)
def test_sdk_stream_and_async_client_round_trip(stack, group):
    async def run():
        client = stack.async_openai()
        events = [e async for e in await client.responses.create(
            model=group, input="Think, then answer.", reasoning=REASONING, store=False, stream=True)]
        final = events[-1].response
        assert final.output[0].type == "reasoning" and final.output[0].encrypted_content
        history = [{"role": "user", "content": "Think, then answer."},
                   *[item.model_dump(exclude_none=True) for item in final.output],
                   {"role": "user", "content": "And then?"}]
        again = await client.responses.create(model=group, input=history, reasoning=REASONING, store=False)
        assert again.output_text
        await client.close()

    asyncio.run(run())
    assistant = next(m for m in sent(stack, group)["messages"] if m["role"] == "assistant")
    assert assistant["content"][0]["type"] == "thinking" and assistant["content"][0]["signature"]


def test_sealed_thoughts_are_dropped_and_named_where_the_cloud_cannot_take_them(stack):
    first = stack.openai().responses.create(model="anthropic", input="Think.", reasoning=REASONING, store=False)
    history = [{"role": "user", "content": "Think."}, *[i.model_dump(exclude_none=True) for i in first.output],
               {"role": "user", "content": "Again."}]
    raw = post(stack, {"model": "chat", "input": history, "reasoning": {"summary": "auto"}, "store": False})
    assert raw.status_code == 200, raw.text
    assert raw.headers["x-skyrelay-dropped-params"] == "reasoning.summary, input.reasoning"
    assert all(m.get("role") != "assistant" or "thinking" not in str(m)
               for m in stack.clouds["openai"].recent_requests[-1]["body"]["messages"])


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_turn_continued_by_id_hands_its_thoughts_back(stack, stream):
    """store: true without include: the client sees no encrypted_content, the stored conversation keeps it, so
    the next turn (previous_response_id) reaches Claude with the signed thinking before the tool call."""
    client = stack.openai()
    ask = "What is the weather in Lisbon?"
    if stream:
        with client.responses.stream(model="anthropic", input=ask, tools=[WEATHER], reasoning=REASONING) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model="anthropic", input=ask, tools=[WEATHER], reasoning=REASONING)
    assert first.output[0].type == "reasoning" and first.output[0].encrypted_content is None
    call = next(item for item in first.output if item.type == "function_call")
    raw = client.responses.with_raw_response.create(
        model="anthropic", previous_response_id=first.id, tools=[WEATHER], reasoning=REASONING,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}])
    assert raw.http_response.status_code == 200 and "x-skyrelay-dropped-params" not in raw.headers
    assistant = next(m for m in sent(stack, "anthropic")["messages"] if m["role"] == "assistant")
    assert assistant["content"][0]["type"] == "thinking" and assistant["content"][0]["signature"]
    assert client.responses.retrieve(first.id).output[0].encrypted_content is None  # stored as answered


def streamed_reasoning_item(events: list[dict]) -> dict:
    """The reasoning item a stream opened first (output 0), checked event by event: its summary part added, the
    summary's deltas adding up to its done text, the part done before the item; the item as done."""
    kinds = [e["type"] for e in events]
    start = kinds.index("response.output_item.added")
    assert events[start]["item"]["type"] == "reasoning" and events[start]["output_index"] == 0
    assert kinds[start + 1] == "response.reasoning_summary_part.added"
    deltas = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    done = next(e for e in events if e["type"] == "response.reasoning_summary_text.done")
    assert deltas and done["text"] == "".join(deltas)
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index("response.output_item.done")
    item = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert item["type"] == "reasoning"
    assert item["summary"] == [{"type": "summary_text", "text": done["text"]}]
    return item
