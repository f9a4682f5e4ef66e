"""Claude Code (`claude -p`, from npm), unchanged, through skyrelay to Claude on Anthropic's API, on Bedrock and on
Vertex AI: with thinking on and a prompt that makes it use a tool, it finishes its turn (tool_use, then the final
text), and what reached each emulated cloud is what Claude Code sent: cache breakpoints on the system prompt and
the newest user block, thinking enabled with its betas, the signed thinking block sent back in the second request
(each emulator verifies signatures, so a changed one would be a 400), and the second turn read from the cache.
It also finishes its turn on an OpenAI-compatible cloud, through the canonical form, and on a model that reasons
through Bedrock Converse (gpt-oss), whose thoughts it gets as thinking blocks and hands back.

The package is pinned in tests/agents/package.json (`npm ci --prefix tests/agents`); `SKYRELAY_CLAUDE` may name
another `claude` binary. Telemetry, error reports and update checks are off, and any traffic not to 127.0.0.1
goes to a dead proxy. Claude Code gets one tool (`--tools Glob`): with its whole default set the emulated model,
which calls the tools the prompt names, also starts subagents that start their own, for ever.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .harness import UPSTREAM_KEY, module_stack

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = os.environ.get("SKYRELAY_CLAUDE") or str(ROOT / "tests" / "agents" / "node_modules" / ".bin" / "claude")
pytestmark = pytest.mark.skipif(not os.access(CLAUDE, os.X_OK),
                                reason="Claude Code is not installed (npm ci --prefix tests/agents)")

ANTHROPIC_MODEL = "claude-sonnet-4-5"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
OTHER_CLOUD_MODEL = "claude-haiku-4-5"  # a group Claude Code takes for a Claude model, served by an OpenAI-kind cloud
REASONING_MODEL = "claude-sonnet-4-5-20250929"  # the same, served by gpt-oss through Bedrock Converse (a model that reasons)
GPT_OSS = "openai.gpt-oss-120b-1:0"
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TIMEOUTS = {"connect": 1, "first_byte": 10, "total": 60}
PROMPT = "Use the Glob tool to find the python files here, then say what you found."
CLOUDS = [
    {"name": "anthropic", "protocol": "anthropic"},
    {"name": "bedrock", "protocol": "bedrock", "api_key": None,
     "options": {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}},
    {"name": "vertex", "protocol": "vertex_anthropic", "options": {"project": "proj-1", "location": "us-east5"}},
    {"name": "openai", "protocol": "openai"},
]


def groups(clouds) -> dict:
    anthropic = {"name": "anthropic-api", "kind": "anthropic", "model": ANTHROPIC_MODEL, "api_key": UPSTREAM_KEY,
                 "base_url": clouds["anthropic"].base_url, "timeouts": TIMEOUTS}
    bedrock = {"name": "claude-on-bedrock", "kind": "bedrock", "model": BEDROCK_MODEL, "region": "us-east-1",
               "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "base_url": clouds["bedrock"].base_url,
               "timeouts": TIMEOUTS}
    vertex = {"name": "claude-on-vertex", "kind": "vertex_anthropic", "model": VERTEX_MODEL, "api_key": UPSTREAM_KEY,
              "project": "proj-1", "location": "us-east5", "base_url": clouds["vertex"].base_url, "timeouts": TIMEOUTS}
    # Each group is named as its cloud names the model, as Claude Code users name models.
    # gpt-4.1: Claude Code asks for 32000 output tokens, more than gpt-4o-mini's limit (a 400 the cloud answers)
    other = {"name": "openai-kind", "kind": "openai", "model": "gpt-4.1", "api_key": UPSTREAM_KEY,
             "base_url": clouds["openai"].base_url, "timeouts": TIMEOUTS}
    gpt_oss = {**bedrock, "name": "gpt-oss-on-bedrock", "model": GPT_OSS}
    return {ANTHROPIC_MODEL: {"deployments": [anthropic]}, BEDROCK_MODEL: {"deployments": [bedrock]},
            VERTEX_MODEL: {"deployments": [vertex]}, OTHER_CLOUD_MODEL: {"deployments": [other]},
            REASONING_MODEL: {"deployments": [gpt_oss]}}


stack = module_stack(CLOUDS, groups)


def run_claude(stack, model: str, home: Path) -> dict:
    work = home / "project"
    work.mkdir()
    (work / "hello.py").write_text("print('hello')\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "ANTHROPIC_BASE_URL": stack.origin, "ANTHROPIC_API_KEY": stack.key,  # the two variables a user sets
        "ANTHROPIC_MODEL": model, "ANTHROPIC_SMALL_FAST_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "MAX_THINKING_TOKENS": "2048",
        "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
    }
    done = subprocess.run([CLAUDE, "-p", PROMPT, "--output-format", "json", "--tools", "Glob"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return json.loads(done.stdout)


def cloud_bodies(stack, cloud: str, before: int) -> list[dict]:
    seen = stack.clouds[cloud].recent_requests
    return [r for r in list(seen)[before:] if isinstance(r["body"], dict) and r["operation"] == "chat"]


@pytest.mark.parametrize("model, cloud, path_end", [
    (ANTHROPIC_MODEL, "anthropic", "/v1/messages"),
    (BEDROCK_MODEL, "bedrock", "/invoke-with-response-stream"),
    (VERTEX_MODEL, "vertex", ":streamRawPredict"),
])
def test_claude_code_finishes_a_tool_using_turn(stack, tmp_path, model, cloud, path_end):
    before = len(stack.clouds[cloud].recent_requests)
    result = run_claude(stack, model, tmp_path)
    assert result["is_error"] is False and result["result"].strip()
    assert result["usage"]["cache_read_input_tokens"] > 0  # the second turn read what the first one wrote

    sent = cloud_bodies(stack, cloud, before)
    assert len(sent) >= 2 and all(r["path"].endswith(path_end) for r in sent)
    assert set(stack.clouds[cloud].stats["by_status"]) == {"200"}
    first, second = sent[0]["body"], sent[-1]["body"]
    assert first["thinking"]["type"] == "enabled"
    assert any("cache_control" in block for block in first["system"])
    assert "cache_control" in first["messages"][-1]["content"][-1]
    betas = first.get("anthropic_beta") or sent[0]["headers"]["anthropic-beta"].split(",")
    assert "interleaved-thinking-2025-05-14" in betas
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")["content"]
    assert assistant[0]["type"] == "thinking" and assistant[0]["signature"]
    assert any(b["type"] == "tool_use" and b["name"] == "Glob" for b in assistant)
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"


def test_claude_code_finishes_its_turn_on_another_cloud(stack, tmp_path):
    """Anthropic in, OpenAI-compatible out: thinking becomes reasoning_effort, the breakpoints and context
    management are left out (a cloud without them answers the same), the tool call and its result map."""
    before = len(stack.clouds["openai"].recent_requests)
    result = run_claude(stack, OTHER_CLOUD_MODEL, tmp_path)
    assert result["is_error"] is False and result["result"].strip()
    sent = cloud_bodies(stack, "openai", before)
    assert len(sent) >= 2 and all(r["path"] == "/v1/chat/completions" for r in sent)
    first, second = sent[0]["body"], sent[-1]["body"]
    assert first["reasoning_effort"] == "low" and first["messages"][0]["role"] == "system"
    assert "cache_control" not in str(first) and "context_management" not in first
    assert [t["function"]["name"] for t in first["tools"]] == ["Glob"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "Glob"
    assert second["messages"][-1]["role"] == "tool"


def test_claude_code_hands_another_clouds_thinking_back(stack, tmp_path):
    """Anthropic in, a reasoning model on Converse out: Claude Code gets gpt-oss's thoughts as a thinking block
    signed by the gateway, keeps it, and hands it back with the tool result; Converse gets its own signed
    reasoning back at the head of the assistant turn (the emulator verifies the signature: a changed one is a 400)."""
    before = len(stack.clouds["bedrock"].recent_requests)
    result = run_claude(stack, REASONING_MODEL, tmp_path)
    assert result["is_error"] is False and result["result"].strip()
    sent = [r for r in cloud_bodies(stack, "bedrock", before) if r["path"].endswith("/converse-stream")]
    assert len(sent) >= 2 and set(stack.clouds["bedrock"].stats["by_status"]) == {"200"}
    first, second = sent[0]["body"], sent[-1]["body"]
    assert first["additionalModelRequestFields"] == {"reasoning_effort": "low"}
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")["content"]
    assert assistant[0]["reasoningContent"]["reasoningText"]["signature"]
    assert any("toolUse" in block and block["toolUse"]["name"] == "Glob" for block in assistant)
