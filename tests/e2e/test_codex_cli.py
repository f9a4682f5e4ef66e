"""Codex CLI (`codex exec`), unchanged, through skyrelay's /v1/responses to an OpenAI deployment (its body forwarded
to the cloud's own Responses API) and an Anthropic one (through the canonical core): it sends its whole agent
request (developer messages, function tools, a `namespace` tool group, client_metadata, reasoning, include), runs
the shell tool the model calls, sends the result back and finishes its turn. What reached each emulated cloud is
checked: the tool call and its output, and on OpenAI the reasoning item with its encrypted_content, handed back to
the cloud that produced it (which verifies it).

Codex CLI is an npm package with a native binary (~400 MB), pinned in tests/agents/package.json
(`npm ci --prefix tests/agents`, which .ci/run does); `SKYRELAY_CODEX` may name another `codex`, and without one
the test is skipped. It is pointed at the gateway as the README says: its own `openai` provider, `CODEX_API_KEY` and
the `openai_base_url` config key. Its web search is turned off for the Anthropic deployment (no cloud behind the
canonical core has that built-in tool: a 400 there), and analytics and update checks are off: traffic stays on
127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .harness import UPSTREAM_KEY, start_stack

PINNED = Path(__file__).resolve().parents[1] / "agents" / "node_modules" / ".bin" / "codex"  # npm ci --prefix tests/agents
CODEX = os.environ.get("SKYRELAY_CODEX") or (str(PINNED) if PINNED.exists() else shutil.which("codex"))
pytestmark = pytest.mark.skipif(not CODEX, reason="Codex CLI is not installed (npm ci --prefix tests/agents)")
TIMEOUTS = {"connect": 1, "first_byte": 5, "total": 20}
CLOUDS = [{"name": "openai", "protocol": "openai"}, {"name": "anthropic", "protocol": "anthropic"}]


def groups(clouds) -> dict:
    common = {"api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {
        "gpt-via-skyrelay": {"deployments": [{"name": "openai-kind", "kind": "openai", "model": "gpt-4o-mini",
                                              "base_url": clouds["openai"].base_url, **common}]},
        "claude-via-skyrelay": {"deployments": [{"name": "anthropic-direct", "kind": "anthropic",
                                                 "model": "claude-3-5-sonnet-latest",
                                                 "base_url": clouds["anthropic"].base_url, **common}]},
    }


@pytest.fixture(scope="module")
def stack(bg):
    s = start_stack(bg, CLOUDS, groups)
    yield s
    s.close()


def codex(stack, tmp_path, model: str, *extra: str, prompt: str = "Use the shell tool to run the command: ls"):
    """Codex as the README points it at the gateway: its own `openai` provider, the key in CODEX_API_KEY, the
    address in the `openai_base_url` config key."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "CODEX_HOME": str(tmp_path),
           "CODEX_API_KEY": stack.key, "NO_COLOR": "1"}
    return subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "-s", "read-only", "-m", model,
         "-c", f'openai_base_url="{stack.base_url}"', "-c", "analytics.enabled=false",
         "-c", "check_for_update_on_startup=false", *extra, prompt],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def seen(stack, cloud: str, before: int) -> list[dict]:
    return [r for r in stack.clouds[cloud].recent_requests][before:]


def test_codex_on_an_openai_deployment_round_trips_its_tool_call_and_reasoning(stack, tmp_path):
    before = len(stack.clouds["openai"].recent_requests)
    done = codex(stack, tmp_path, "gpt-via-skyrelay", "-c", "model_reasoning_effort=low")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "ERROR: {" not in done.stderr
    requests = seen(stack, "openai", before)
    assert {r["path"] for r in requests} == {"/v1/responses"}  # forwarded to the cloud's own Responses API
    first, last = requests[0]["body"], requests[-1]["body"]
    assert first["model"] == "gpt-4o-mini" and first["store"] is False
    assert any(t["type"] == "namespace" for t in first["tools"])
    kinds = [item.get("type", "message") for item in last["input"]]
    assert "function_call" in kinds and "function_call_output" in kinds
    reasoning = [item for item in last["input"] if item.get("type") == "reasoning"]
    assert reasoning and reasoning[0]["encrypted_content"]  # verified by the cloud that made it: the turn went on


def test_codex_on_an_anthropic_deployment_finishes_its_turn(stack, tmp_path):
    before = len(stack.clouds["anthropic"].recent_requests)
    done = codex(stack, tmp_path, "claude-via-skyrelay", "-c", "web_search=disabled")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "ERROR: {" not in done.stderr
    requests = seen(stack, "anthropic", before)
    assert {r["path"] for r in requests} == {"/v1/messages"}
    last = requests[-1]["body"]
    blocks = [b.get("type") for m in last["messages"] if isinstance(m["content"], list) for b in m["content"]]
    assert "tool_use" in blocks and "tool_result" in blocks
    assert last["system"]  # Codex's developer instructions, as Anthropic's system prompt




def test_codex_falls_back_to_http_at_once_and_its_web_search_runs_on_openai(stack, tmp_path):
    """Codex's `openai` provider opens a Responses WebSocket first: answered 426, it posts at once (no reconnect
    loop). Its web search (on by default) reaches the OpenAI deployment, whose emulated cloud runs it; on a group
    without such a deployment it is refused (a 400 naming the tool), so the Anthropic test turns it off."""
    before = len(stack.clouds["openai"].recent_requests)
    done = codex(stack, tmp_path, "gpt-via-skyrelay")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "Reconnecting" not in done.stderr
    requests = seen(stack, "openai", before)
    assert any(t["type"] == "web_search" for t in requests[0]["body"]["tools"])
    refused = codex(stack, tmp_path, "claude-via-skyrelay")
    assert refused.returncode != 0 and "web_search" in refused.stderr + refused.stdout
