"""Agent frameworks on the Responses API, unchanged, through skyrelay: the OpenAI Agents SDK (`openai-agents`, its
OpenAIResponsesModel) and the Vercel AI SDK's default OpenAI model (`ai` + `@ai-sdk/openai`, a small node script in
tests/agents), each running an agent that calls a function tool and answers with its result, on an OpenAI
deployment (the body forwarded to the cloud's own Responses API) and an Anthropic one (through the canonical core).
Each test reads what reached the emulated cloud: the tool call and its output went there. Tracing is off; all
traffic stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .harness import UPSTREAM_KEY, module_stack

AGENTS_DIR = Path(__file__).resolve().parents[1] / "agents"
NODE = shutil.which("node")
TIMEOUTS = {"connect": 1, "first_byte": 5, "total": 20}
CLOUDS = [{"name": "openai", "protocol": "openai"}, {"name": "anthropic", "protocol": "anthropic"}]
CASES = [("gpt", "openai", "/v1/responses"), ("claude", "anthropic", "/v1/messages")]


def groups(clouds) -> dict:
    common = {"api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {"gpt": {"deployments": [{"name": "oa", "kind": "openai", "model": "gpt-4o-mini",
                                     "base_url": clouds["openai"].base_url, **common}]},
            "claude": {"deployments": [{"name": "an", "kind": "anthropic", "model": "claude-3-5-sonnet-latest",
                                        "base_url": clouds["anthropic"].base_url, **common}]}}


stack = module_stack(CLOUDS, groups)


def requests_since(stack, cloud: str, before: int) -> list[dict]:
    return list(stack.clouds[cloud].recent_requests)[before:]


def tool_round_trip_reached(requests: list[dict], path: str) -> bool:
    """The last request carried the tool's result back after the model's call, in that cloud's own shape."""
    body = requests[-1]["body"]
    if path == "/v1/responses":
        kinds = [item.get("type", "message") for item in body["input"]]
        return "function_call" in kinds and "function_call_output" in kinds
    blocks = [b.get("type") for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return "tool_use" in blocks and "tool_result" in blocks


@pytest.mark.parametrize("model, cloud, path", CASES)
def test_the_openai_agents_sdk_runs_a_tool_calling_agent(stack, model, cloud, path):
    agents = pytest.importorskip("agents")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return json.dumps({"city": city, "temperature_c": 21})

    async def run():
        client = AsyncOpenAI(base_url=stack.base_url, api_key=stack.key, max_retries=0)
        agent = agents.Agent(name="forecaster", instructions="Answer with the weather.", tools=[get_weather],
                             model=agents.OpenAIResponsesModel(model=model, openai_client=client))
        try:
            return await agents.Runner.run(agent, "What is the weather in Lisbon?", max_turns=4)
        finally:
            await client.close()

    before = len(stack.clouds[cloud].recent_requests)
    result = asyncio.run(run())
    assert calls and isinstance(result.final_output, str) and result.final_output
    requests = requests_since(stack, cloud, before)
    assert {r["path"] for r in requests} == {path} and len(requests) >= 2
    assert tool_round_trip_reached(requests, path)


@pytest.mark.skipif(not NODE or not (AGENTS_DIR / "node_modules" / "ai").exists(),
                    reason="node or the Vercel AI SDK is missing (npm ci --prefix tests/agents)")
@pytest.mark.parametrize("model, cloud, path", CASES)
def test_the_vercel_ai_sdk_default_model_answers_streams_and_calls_a_tool(stack, model, cloud, path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SKYRELAY_BASE_URL": stack.base_url,
           "SKYRELAY_API_KEY": stack.key, "SKYRELAY_MODEL": model}
    before = len(stack.clouds[cloud].recent_requests)
    done = subprocess.run([NODE, str(AGENTS_DIR / "vercel_ai.mjs")], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["whole"] and out["inputTokens"] > 0 and out["streamed"]
    assert out["calls"] == ["get_weather"] and out["final"]
    requests = requests_since(stack, cloud, before)
    assert {r["path"] for r in requests} == {path}
    assert tool_round_trip_reached(requests, path)
