"""Gemini's thoughts on the translated Responses path: `reasoning: {effort, summary}` asks Gemini for a thinking
budget and its thought summary (`thinkingConfig.includeThoughts`); the thought parts come back as a `reasoning`
item with that summary, streamed with the reasoning summary events, and `thoughtsTokenCount` as the usage's
reasoning tokens. Gemini's thoughts cannot be handed back (its function-call signatures travel in the call ids),
so nothing is sealed. The real `openai` SDK drives the gateway; answers and events are checked against the spec."""

from __future__ import annotations

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import TIMEOUTS, post, validated_stream
from .test_responses_reasoning import streamed_reasoning_item

MODEL = "gemini-2.5-flash"
CLOUDS = [{"name": "google", "protocol": "gemini", "models": [MODEL]}]
REASONING = {"effort": "low", "summary": "auto"}


def groups(clouds) -> dict:
    return {"gemini": {"deployments": [{"name": "gemini-thinking", "kind": "gemini", "api_key": UPSTREAM_KEY,
                                        "base_url": clouds["google"].base_url, "model": MODEL,
                                        "timeouts": TIMEOUTS}]}}


stack = module_stack(CLOUDS, groups)


def thinking_sent(stack) -> dict:
    seen = stack.clouds["google"].recent_requests[-1]
    assert seen["path"].endswith(f"/models/{MODEL}:generateContent") or "streamGenerateContent" in seen["path"]
    return seen["body"]["generationConfig"].get("thinkingConfig")


def test_effort_and_summary_become_thinking_config_and_a_reasoning_item(stack):
    client = stack.openai()
    raw = client.responses.with_raw_response.create(model="gemini", input="Think, then answer.", reasoning=REASONING,
                                                    include=["reasoning.encrypted_content"])
    validate("Response", raw.http_response.json())
    assert "x-skyrelay-dropped-params" not in raw.headers  # the summary is Gemini's to give
    assert thinking_sent(stack) == {"thinkingBudget": 1024, "includeThoughts": True}
    response = raw.parse()
    item, message = response.output[0], response.output[1]
    assert item.type == "reasoning" and item.id.startswith("rs_") and message.type == "message"
    assert item.summary and item.summary[0].type == "summary_text" and item.summary[0].text
    assert item.encrypted_content is None  # nothing Gemini could take back
    assert response.output_text and item.summary[0].text not in response.output_text
    details = response.usage.output_tokens_details
    assert 0 < details.reasoning_tokens < response.usage.output_tokens


def test_no_summary_asked_no_thoughts_asked(stack):
    response = stack.openai().responses.create(model="gemini", input="Think, then answer.",
                                               reasoning={"effort": "low"})
    assert thinking_sent(stack) == {"thinkingBudget": 1024}
    assert [item.type for item in response.output] == ["message"]


def test_the_stream_carries_the_reasoning_summary_events(stack):
    events = validated_stream(stack, {"model": "gemini", "input": "Think, then answer.", "reasoning": REASONING})
    item = streamed_reasoning_item(events)
    assert item["encrypted_content"] is None  # Gemini takes no thoughts back
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert thinking_sent(stack)["includeThoughts"] is True


def test_sdk_stream_helper_gets_the_summary(stack):
    with stack.openai().responses.stream(model="gemini", input="Think, then answer.", reasoning=REASONING) as events:
        summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
        final = events.get_final_response()
    assert summary and final.output[0].summary[0].text == summary and final.output_text


def test_chat_completions_unchanged(stack):
    raw = post(stack, {"model": "gemini", "input": "hi"})  # no reasoning asked: no thoughts either
    assert raw.status_code == 200 and [i["type"] for i in raw.json()["output"]] == ["message"]
    chat = stack.openai().chat.completions.create(model="gemini", messages=[{"role": "user", "content": "hi"}],
                                                  reasoning_effort="low")
    assert chat.choices[0].message.content
    assert "includeThoughts" not in thinking_sent(stack)

