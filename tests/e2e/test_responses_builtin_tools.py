"""Built-in tools on /v1/responses (issue 11, point 2's rule): `web_search` goes as is to deployments with their own
Responses API (OpenAI, Azure), where the emulated cloud searches (a `web_search_call` item, streamed with its
in_progress / searching / completed events); through the canonical core no cloud has it (Anthropic's emulated
API accepts its server tool but never runs it, so it is not mapped there): the request fails over to a
deployment in the group that can run it, else it is a 400 naming `tools[i].type`. Never ignored."""

from __future__ import annotations

import openai
import pytest

from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, module_stack
from .test_responses_api import TIMEOUTS, WEATHER, post, validated_stream

CLOUDS = [{"name": "openai", "protocol": "openai"}, {"name": "anthropic", "protocol": "anthropic"},
          {"name": "azure", "protocol": "azure", "deployments": [{"name": "gpt4o-eastus", "model": "gpt-4o"}]}]
SEARCH = {"type": "web_search"}
ASK = "What happened in Lisbon today?"


def groups(clouds) -> dict:
    gpt = {"name": "gpt", "kind": "openai", "base_url": clouds["openai"].base_url, "model": "gpt-4o-mini",
           "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    claude = {"name": "claude", "kind": "anthropic", "base_url": clouds["anthropic"].base_url,
              "model": "claude-sonnet-4-20250514", "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {
        "native": {"deployments": [gpt]},
        "azure": {"deployments": [{"name": "az", "kind": "azure", "base_url": clouds["azure"].base_url,
                                   "model": "gpt4o-eastus", "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}]},
        "mixed": {"deployments": [{**claude, "tier": 0}, {**gpt, "name": "gpt-spare", "tier": 1}]},
        "claude": {"deployments": [{**claude, "name": "claude-only"}]},
    }


stack = module_stack(CLOUDS, groups)


@pytest.mark.parametrize("group", ["native", "azure"])
def test_a_native_deployment_searches_the_web(stack, group):
    raw = stack.openai().responses.with_raw_response.create(model=group, input=ASK, tools=[SEARCH],
                                                            include=["web_search_call.action.sources"])
    validate("Response", raw.http_response.json())
    response = raw.parse()
    search, message = response.output[0], response.output[1]
    assert search.type == "web_search_call" and search.status == "completed" and search.id.startswith("ws_")
    assert search.action.type == "search" and search.action.query == ASK and search.action.sources
    assert message.type == "message" and response.output_text
    quiet = stack.openai().responses.create(model=group, input=ASK, tools=[SEARCH], tool_choice="none")
    assert all(item.type != "web_search_call" for item in quiet.output)


def test_a_native_stream_carries_the_search_events(stack):
    events = validated_stream(stack, {"model": "native", "input": ASK, "tools": [SEARCH]})
    kinds = [e["type"] for e in events]
    at = kinds.index("response.web_search_call.in_progress")
    assert kinds[at - 1] == "response.output_item.added" and events[at - 1]["item"]["type"] == "web_search_call"
    assert kinds[at:at + 4] == ["response.web_search_call.in_progress", "response.web_search_call.searching",
                                "response.web_search_call.completed", "response.output_item.done"]
    assert events[-1]["response"]["output"][0]["type"] == "web_search_call"


@pytest.mark.parametrize("stream", [False, True])
def test_the_translated_path_fails_over_to_a_deployment_that_searches(stack, stream):
    client = stack.openai()
    plain = client.responses.with_raw_response.create(model="mixed", input="hello")
    assert plain.headers["x-skyrelay-deployment"] == "claude"  # the first tier serves what it can
    if stream:
        with client.responses.stream(model="mixed", input=ASK, tools=[SEARCH, WEATHER]) as events:
            response = events.get_final_response()
    else:
        raw = client.responses.with_raw_response.create(model="mixed", input=ASK, tools=[SEARCH, WEATHER])
        assert raw.headers["x-skyrelay-deployment"] == "gpt-spare"
        response = raw.parse()
    assert response.output[0].type == "web_search_call"
    assert stack.clouds["openai"].recent_requests[-1]["body"]["tools"][0] == SEARCH


def test_without_such_a_deployment_it_is_a_400_naming_the_tool(stack):
    raw = post(stack, {"model": "claude", "input": ASK, "tools": [WEATHER, SEARCH]})
    assert raw.status_code == 400, raw.text
    validate("ErrorResponse", raw.json())
    assert raw.json()["error"]["param"] == "tools[1].type" and "web_search" in raw.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        stack.openai().responses.create(model="claude", input=ASK, tools=[SEARCH], stream=True)
