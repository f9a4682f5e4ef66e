"""LiteLLM's proxy for `bench/compare.py --with-litellm`: installed from PyPI into its own venv on first use (never
into skyrelay's, outside the checkout), configured like the minimal skyrelay config (one OpenAI-compatible model on
the static upstream, its stream on the static stream, a master key), run as `pip install 'litellm[proxy]'` gives it,
and tuned, so the comparison is fair to it: httptools (uvicorn's fast HTTP parser, not a dependency) and the
OpenTelemetry SDK, which it tries to import about twice per request (as installed, only the OpenTelemetry API comes,
with FastAPI, and every attempt is a failed import: a walk of sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.108.7"
VENV = Path(os.environ.get("SKYRELAY_BENCH_CACHE", Path.home() / ".cache" / "skyrelay-bench")) / "litellm-venv"
TUNING = {"httptools": "0.9.0", "opentelemetry-sdk": "1.45.2"}  # the SDK's version is the API's it comes with


def _pip(*args: str) -> None:
    done = subprocess.run([str(VENV / "bin" / "pip"), *args], capture_output=True, text=True)
    if done.returncode:  # its output only when it failed (a pip configuration's warnings would crowd the table)
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"pip {' '.join(args)} failed in {VENV}")


def ensure_installed(tuned: bool) -> Path:
    if not (VENV / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        _pip("install", "-q", f"litellm[proxy]=={LITELLM_VERSION}")
    if tuned:
        _pip("install", "-q", *(f"{name}=={version}" for name, version in TUNING.items()))
    else:  # "as installed": take the tuning back out if an earlier run added it
        subprocess.run([str(VENV / "bin" / "pip"), "uninstall", "-q", "-y", *TUNING], check=False,
                       capture_output=True)
    return VENV / "bin" / "litellm"


def start_litellm(port: int, upstream_port: int, workdir: Path, tuned: bool, proc_type):
    binary = ensure_installed(tuned)
    config = workdir / f"litellm{'-tuned' if tuned else ''}.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params: {model: openai/gpt-4o-mini, api_base: 'http://127.0.0.1:%d/v1', api_key: up}\n"
        "  - model_name: chat-stream\n"
        "    litellm_params: {model: openai/gpt-4o-mini, api_base: 'http://127.0.0.1:%d/stream/v1', api_key: up}\n"
        "general_settings: {master_key: sk-bench}\n"
        "litellm_settings: {telemetry: false, turn_off_message_logging: true}\n" % (upstream_port, upstream_port))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # skyrelay's sources are none of its business
    env.update(LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True", NO_DOCS="True", DISABLE_ADMIN_UI="True")
    return proc_type([str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                      "--num_workers", "1"], port, 0, env=env, cwd=workdir)
