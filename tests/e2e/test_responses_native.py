"""/v1/responses to deployments with a Responses API of their own (OpenAI, Azure OpenAI): the client's body reaches
the cloud with only the model swapped (built-in tools, reasoning, include and prompt_cache_key intact), the cloud's
answer and events come back as sent, reasoning items round-trip to the cloud that produced them, a failure before
output still fails over, and `responses: translate` sends the request through chat completions instead. Every
answer and stream event is checked against OpenAI's Responses schemas; each test reads what reached the cloud."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import sse_events

TIMEOUTS = {"connect": 1, "first_byte": 3, "total": 10}
CLOUDS = [{"name": "openai-a", "protocol": "openai"}, {"name": "openai-b", "protocol": "openai"},
          {"name": "azure", "protocol": "azure", "deployments": [{"name": "gpt4o-eastus", "model": "gpt-4o"}]}]
WEB_SEARCH = {"type": "web_search"}
REASONING = {"effort": "low", "summary": "auto"}


def groups(clouds) -> dict:
    def openai_kind(name, cloud, **extra):
        return {"name": name, "kind": "openai", "base_url": clouds[cloud].base_url, "model": "gpt-4o-mini",
                "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS, **extra}
    return {
        "native": {"deployments": [openai_kind("oa", "openai-a")]},
        **{f"failover-{way}": {"deployments": [openai_kind(f"fa-{way}", "openai-a", tier=0),
                                                openai_kind(f"fb-{way}", "openai-b", tier=1)]}
           for way in ("whole", "stream", "cut")},
        "translated": {"deployments": [openai_kind("tr", "openai-b", responses="translate")]},
        "azure": {"deployments": [{"name": "az", "kind": "azure", "base_url": clouds["azure"].base_url,
                                   "model": "gpt4o-eastus", "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}]},
    }


stack = module_stack(CLOUDS, groups)


def post(stack, body: dict) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/responses", json=body, timeout=10,
                      headers={"authorization": f"Bearer {stack.key}"})


def last_request(stack, cloud: str) -> dict:
    return stack.clouds[cloud].recent_requests[-1]


@pytest.mark.parametrize("group, cloud, path, model", [
    ("native", "openai-a", "/v1/responses", "gpt-4o-mini"), ("azure", "azure", "/openai/v1/responses", "gpt4o-eastus")])
def test_the_clients_body_reaches_the_cloud_with_the_model_swapped(stack, group, cloud, path, model):
    body = {"model": group, "input": "Think, then answer.", "tools": [WEB_SEARCH], "reasoning": REASONING,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1", "store": False,
            "client_metadata": {"session": "s1"}}
    raw = post(stack, body)
    assert raw.status_code == 200, raw.text
    validate("Response", raw.json())
    assert "x-skyrelay-dropped-params" not in raw.headers  # nothing was left out
    seen = last_request(stack, cloud)
    assert seen["path"] == path and seen["body"] == {**body, "model": model}
    reasoning, message = raw.json()["output"][:2]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"]
    assert raw.json()["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    history = [{"role": "user", "content": "Think, then answer."}, reasoning, message,
               {"role": "user", "content": "And then?"}]
    again = post(stack, {"model": group, "input": history, "reasoning": REASONING, "store": False})
    assert again.status_code == 200, again.text  # the cloud verified its own encrypted_content
    assert last_request(stack, cloud)["body"]["input"][1] == reasoning


def test_a_stream_passes_through_event_for_event(stack):
    raw = post(stack, {"model": "native", "input": "hello", "stream": True, "reasoning": REASONING})
    assert raw.status_code == 200, raw.text
    events = sse_events(raw.text)
    for i, (name, event) in enumerate(events):
        validate("ResponseStreamEvent", event)
        assert name == event["type"] and event["sequence_number"] == i
    kinds = [e["type"] for _, e in events]
    assert "response.reasoning_summary_text.delta" in kinds and kinds[-1] == "response.completed"
    assert events[0][1]["response"]["model"] == "gpt-4o-mini"  # the cloud's own events, not re-rendered


def test_the_sdk_streams_and_gets_whole_answers_through_the_pass_through(stack):
    client = stack.openai()
    whole = client.responses.create(model="azure", input="hello", store=False)
    assert whole.output_text and whole.usage.input_tokens > 0
    with client.responses.stream(model="native", input="hello", store=False) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        assert stream.get_final_response().output_text == text


@pytest.mark.parametrize("streamed", [False, True])
def test_a_failure_before_output_fails_over(stack, streamed):
    stack.set_faults("openai-a", [{"kind": "status", "status": 429, "times": 1}])
    try:
        way = "stream" if streamed else "whole"
        resp = post(stack, {"model": f"failover-{way}", "input": "hello", "store": False, "stream": streamed})
    finally:
        stack.clear_faults("openai-a")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-skyrelay-deployment"] == f"fb-{way}" and resp.headers["x-skyrelay-attempts"] == "2"
    assert last_request(stack, "openai-b")["path"] == "/v1/responses"


def test_a_stream_cut_before_its_first_output_fails_over_invisibly(stack):
    """created, in_progress and the first item's added events are held until output follows."""
    stack.set_faults("openai-a", [{"kind": "cut_stream", "after_chunks": 3, "ending": "reset", "times": 1}])
    try:
        resp = post(stack, {"model": "failover-cut", "input": "hello", "store": False, "stream": True})
    finally:
        stack.clear_faults("openai-a")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-skyrelay-deployment"] == "fb-cut" and resp.headers["x-skyrelay-attempts"] == "2"
    events = [event for _, event in sse_events(resp.text)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"


def test_translate_sends_chat_completions(stack):
    raw = post(stack, {"model": "translated", "input": "hello", "store": False, "reasoning": {"summary": "auto"}})
    assert raw.status_code == 200, raw.text
    validate("Response", raw.json())
    assert last_request(stack, "openai-b")["path"] == "/v1/chat/completions"
    assert raw.headers["x-skyrelay-dropped-params"] == "reasoning.summary"


def test_an_upstream_refusal_passes_through_as_a_400(stack):
    refused = post(stack, {"model": "native", "input": "hello", "temperature": 3, "store": False})
    assert refused.status_code == 400
    validate("ErrorResponse", refused.json())
    assert refused.json()["error"]["param"] == "temperature"  # the cloud's own words, param and code kept
    assert refused.json()["error"]["code"] == "decimal_above_max_value"
    with pytest.raises(openai.BadRequestError, match="could not be verified"):
        stack.openai().responses.create(model="native", store=False, input=[
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "forged.mac"},
            {"role": "user", "content": "hello"}])


@pytest.mark.parametrize("group", ["native", "azure"])
def test_an_unknown_reasoning_item_is_the_clients_404_and_never_opens_the_deployments_breaker(stack, group):
    """The cloud answers 404 naming the request's `input`: the client's mistake, passed through. Charged to the
    deployment as a missing model would be, three such requests opened its breaker for every client."""
    deployment = {"native": "oa", "azure": "az"}[group]
    dispatcher = stack.gateway.dispatcher
    body = [{"type": "reasoning", "id": "rs_never_stored", "summary": []}, {"role": "user", "content": "hello"}]
    for _ in range(dispatcher.health.policy.failure_threshold + 1):
        with pytest.raises(openai.NotFoundError, match="rs_never_stored") as caught:
            stack.openai().responses.create(model=group, store=False, input=body)
        assert caught.value.body["param"] == "input"
    assert dispatcher.health.state(deployment, dispatcher.clock()) == "closed"
    assert dispatcher.health.is_available(deployment, dispatcher.clock())
    assert stack.openai().responses.create(model=group, input="hello", store=False).output_text
