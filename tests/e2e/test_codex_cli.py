"""Codex CLI (`codex exec`), unchanged, through skyrelay's /v1/responses to an OpenAI deployment (its body forwarded
to the cloud's own Responses API) and an Anthropic one (through the canonical core): it sends its whole agent
request (developer messages, function tools, a `namespace` tool group, client_metadata, reasoning, include), runs
the shell tool the model calls, sends the result back and finishes its turn. What reached each emulated cloud is
checked: the tool call and its output, and on OpenAI the reasoning item with its encrypted_content, handed back to
the cloud that produced it (which verifies it).

Codex is set up as the README says, the way a user would: `skyrelay agents codex-home` once (the real CLI), then
two environment variables, CODEX_HOME and SKYRELAY_API_KEY, and `codex exec` in a git repository (no
--skip-git-repo-check, no -m: the home names the model group). One test keeps the other form, Codex's own `openai`
provider with `openai_base_url` and CODEX_API_KEY (a user's existing ~/.codex), which opens a Responses WebSocket
first.

Codex CLI is an npm package with a native binary (~400 MB), pinned in tests/agents/package.json
(`npm ci --prefix tests/agents`, which .ci/run does); `SKYRELAY_CODEX` may name another `codex`, and without one
the test is skipped. Analytics and update checks are off on its command line (traffic stays on 127.0.0.1), and
HOME is the test's own directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import UPSTREAM_KEY, module_stack

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


stack = module_stack(CLOUDS, groups)


ISOLATED = ["-c", "analytics.enabled=false", "-c", "check_for_update_on_startup=false"]


def codex_home(stack, tmp_path: Path, *flags: str) -> Path:
    """The user's one command: `skyrelay agents codex-home`, run as the real CLI."""
    home = tmp_path / "codex-home"
    done = subprocess.run([sys.executable, "-m", "skyrelay.cli", "agents", "codex-home", "--url", stack.base_url,
                           "--dir", str(home), *flags], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"export CODEX_HOME={home}" in done.stdout and "export SKYRELAY_API_KEY=" in done.stdout
    return home


def project(tmp_path: Path) -> Path:
    """A git repository to work in, as a user's would be (`codex exec` refuses an untrusted folder outside one)."""
    work = tmp_path / "project"
    work.mkdir()
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    return work


def run_codex(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "NO_COLOR": "1"}
    return subprocess.run([CODEX, "exec", *ISOLATED, *args], cwd=project(tmp_path), env={**base, **env},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def codex(stack, tmp_path: Path, model: str, *extra: str, home_flags: tuple[str, ...] = (),
          prompt: str = "Use the shell tool to run the command: ls") -> subprocess.CompletedProcess:
    """Codex as the README points it at the gateway: a home written by skyrelay, then two variables."""
    home = codex_home(stack, tmp_path, "--model", model, *home_flags)
    return run_codex(tmp_path, {"CODEX_HOME": str(home), "SKYRELAY_API_KEY": stack.key}, *extra, prompt)


def seen(stack, cloud: str, before: int) -> list[dict]:
    return [r for r in stack.clouds[cloud].recent_requests][before:]


def test_codex_on_an_openai_deployment_round_trips_its_tool_call_and_reasoning(stack, tmp_path):
    before = len(stack.clouds["openai"].recent_requests)
    done = codex(stack, tmp_path, "gpt-via-skyrelay", "-c", "model_reasoning_effort=low")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "ERROR:" not in done.stderr
    requests = seen(stack, "openai", before)
    assert {r["path"] for r in requests} == {"/v1/responses"}  # forwarded to the cloud's own Responses API
    first, last = requests[0]["body"], requests[-1]["body"]
    assert first["model"] == "gpt-4o-mini" and first["store"] is False
    assert any(t["type"] == "namespace" for t in first["tools"])
    assert any(t["type"] == "web_search" for t in first["tools"])  # on by default; the OpenAI cloud runs it
    kinds = [item.get("type", "message") for item in last["input"]]
    assert "function_call" in kinds and "function_call_output" in kinds
    reasoning = [item for item in last["input"] if item.get("type") == "reasoning"]
    assert reasoning and reasoning[0]["encrypted_content"]  # verified by the cloud that made it: the turn went on


def test_codex_on_an_anthropic_deployment_finishes_its_turn(stack, tmp_path):
    before = len(stack.clouds["anthropic"].recent_requests)
    done = codex(stack, tmp_path, "claude-via-skyrelay", home_flags=("--no-web-search",))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "ERROR:" not in done.stderr
    requests = seen(stack, "anthropic", before)
    assert {r["path"] for r in requests} == {"/v1/messages"}
    last = requests[-1]["body"]
    blocks = [b.get("type") for m in last["messages"] if isinstance(m["content"], list) for b in m["content"]]
    assert "tool_use" in blocks and "tool_result" in blocks
    assert last["system"]  # Codex's developer instructions, as Anthropic's system prompt


def test_codex_web_search_is_refused_where_no_cloud_can_run_it(stack, tmp_path):
    """Without --no-web-search, a group with no OpenAI or Azure deployment refuses the tool (a 400 naming it)
    rather than answer without it."""
    refused = codex(stack, tmp_path, "claude-via-skyrelay")
    assert refused.returncode != 0 and "web_search" in refused.stderr + refused.stdout


def test_codex_without_its_key_variable_says_which_is_missing(stack, tmp_path):
    home = codex_home(stack, tmp_path, "--model", "gpt-via-skyrelay")
    done = run_codex(tmp_path, {"CODEX_HOME": str(home)}, "hi")
    assert done.returncode != 0 and "SKYRELAY_API_KEY" in done.stderr


def test_codex_own_openai_provider_falls_back_to_http_at_once(stack, tmp_path):
    """The other form (a user's own ~/.codex): Codex's `openai` provider, the address in `openai_base_url`, the key in
    CODEX_API_KEY (`codex exec` only: the interactive `codex` asks to sign in first). It opens a Responses WebSocket
    first: answered 426, it posts at once (no reconnect loop)."""
    before = len(stack.clouds["openai"].recent_requests)
    env = {"CODEX_HOME": str(tmp_path), "CODEX_API_KEY": stack.key}
    done = run_codex(tmp_path, env, "-m", "gpt-via-skyrelay", "-c", f'openai_base_url="{stack.base_url}"', "hi")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and "Reconnecting" not in done.stderr
    assert seen(stack, "openai", before)


TMUX = shutil.which("tmux")


@pytest.mark.skipif(not TMUX, reason="the interactive test drives Codex's terminal UI in tmux")
def test_interactive_codex_starts_without_a_sign_in_and_answers(stack, tmp_path):
    """The interactive `codex` with the same two variables: no sign-in screen (the `openai` provider would show one),
    the folder trust question a user answers once, then the answer from the gateway, in a real terminal (tmux on a
    socket of the test's own)."""
    home = codex_home(stack, tmp_path, "--model", "gpt-via-skyrelay")
    work = project(tmp_path)
    before = len(stack.clouds["openai"].recent_requests)
    tmux = [TMUX, "-S", str(tmp_path / "tmux.sock")]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TERM": "xterm-256color",
           "CODEX_HOME": str(home), "SKYRELAY_API_KEY": stack.key}
    command = " ".join([CODEX, *ISOLATED, "'say hello'"])
    subprocess.run([*tmux, "new-session", "-d", "-x", "150", "-y", "40", "-c", str(work),
                    "env", "-i", *[f"{k}={v}" for k, v in env.items()], "sh", "-c", command], check=True)
    try:
        screen = wait_for_screen(tmux, "Trust this folder")
        assert "Sign in" not in screen
        answer_trust(tmux)
        wait_for_screen(tmux, "Worked for")  # Codex's line under a finished turn
        assert seen(stack, "openai", before)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def answer_trust(tmux: list[str], patience: float = 30) -> None:
    """Enter on the trust question, again while it stays: the screen can be drawn before Codex reads keys (a key
    pressed then is lost, seen once under load)."""
    deadline = time.monotonic() + patience
    while True:
        subprocess.run([*tmux, "send-keys", "Enter"], check=True)
        time.sleep(2)
        screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
        if "Trust this folder" not in screen or time.monotonic() > deadline:
            return


def wait_for_screen(tmux: list[str], text: str, patience: float = 60) -> str:
    deadline = time.monotonic() + patience
    while True:
        screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
        if text in screen or time.monotonic() > deadline:
            assert text in screen, screen
            return screen
        time.sleep(0.2)
