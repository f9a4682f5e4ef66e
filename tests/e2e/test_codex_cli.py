"""Codex CLI (`codex exec`), unchanged, through skyrelay's /v1/responses to an OpenAI-compatible and an Anthropic
deployment: it sends its whole agent request (developer messages, function tools, a `namespace` tool group,
client_metadata, reasoning.summary, include) and finishes its turn, tool calls included, on either cloud.

Codex CLI is an npm package with a native binary (~400 MB): it runs when `SKYRELAY_CODEX` names its `codex`
executable or one is on PATH (`npm install @openai/codex@0.171.0`), and is skipped otherwise. Its web search is
turned off (`web_search=disabled`): no cloud behind the canonical core has that built-in tool, and it is a 400."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .harness import UPSTREAM_KEY, start_stack

CODEX = os.environ.get("SKYRELAY_CODEX") or shutil.which("codex")
pytestmark = pytest.mark.skipif(not CODEX, reason="Codex CLI is not installed (set SKYRELAY_CODEX)")
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


@pytest.mark.parametrize("model, cloud", [("gpt-via-skyrelay", "openai"), ("claude-via-skyrelay", "anthropic")])
def test_codex_exec_finishes_a_turn_through_skyrelay(stack, tmp_path, model, cloud):
    provider = (f'model_providers.skyrelay={{name="skyrelay", base_url="{stack.base_url}", '
                f'env_key="SKYRELAY_API_KEY", wire_api="responses"}}')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "CODEX_HOME": str(tmp_path),
           "SKYRELAY_API_KEY": stack.key, "NO_COLOR": "1"}
    before = stack.clouds[cloud].stats["requests"]
    done = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "-s", "read-only", "-m", model, "-c", "model_provider=skyrelay",
         "-c", provider, "-c", "web_search=disabled", "-c", "analytics.enabled=false",
         "-c", "check_for_update_on_startup=false", "say hello"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), done.stderr[-2000:]  # the turn's final message
    assert "ERROR: {" not in done.stderr  # no request of the turn was refused
    assert stack.clouds[cloud].stats["requests"] > before
