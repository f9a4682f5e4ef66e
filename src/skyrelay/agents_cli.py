"""`skyrelay agents codex-home`: write a Codex CLI home (its CODEX_HOME) that points Codex at a skyrelay gateway, so
that a user's steps are this command once, then two environment variables: CODEX_HOME and SKYRELAY_API_KEY.

Codex CLI (0.171.0) reads no environment variable for its `openai` provider's address (OPENAI_BASE_URL is not one),
and that provider asks an interactive `codex` to sign in first. A model provider of its own in config.toml has
neither limit: its address is in the file, its key in the environment variable it names (`env_key`), and it needs
no OpenAI sign-in, so `codex` and `codex exec` both start at once. The file holds no secret."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KEY_VARIABLE = "SKYRELAY_API_KEY"
DEFAULT_URL = "http://127.0.0.1:4000/v1"
DEFAULT_DIR = "~/.skyrelay/codex"


def add_commands(commands: Any) -> None:
    """Register `agents codex-home` on the CLI's subparsers; it sets `handler`."""
    agents = commands.add_parser("agents", help="set up coding agents (Codex CLI) to use a skyrelay gateway")
    kinds = agents.add_subparsers(dest="agent", required=True)
    home = kinds.add_parser("codex-home", help="write a CODEX_HOME whose config.toml points Codex at skyrelay")
    home.add_argument("--url", default=DEFAULT_URL, help=f"the gateway's OpenAI base URL (default {DEFAULT_URL})")
    home.add_argument("--dir", default=DEFAULT_DIR, help=f"the directory to write (default {DEFAULT_DIR})")
    home.add_argument("--model", help="the model group Codex asks for by default (else Codex's own default name)")
    home.add_argument("--no-web-search", action="store_true",
                      help="turn Codex's web search off (for model groups with no OpenAI or Azure deployment)")
    home.add_argument("--force", action="store_true", help="replace an existing config.toml in --dir")
    home.set_defaults(handler=codex_home_command)


def codex_config(url: str, model: str | None = None, web_search: bool = True) -> str:
    """config.toml for Codex: a `skyrelay` model provider speaking the Responses API to `url`, its key read from
    SKYRELAY_API_KEY. Top-level keys come before the provider's table (TOML puts later keys inside a table)."""
    lines = ["# Written by `skyrelay agents codex-home`: Codex CLI through a skyrelay gateway.",
             f"# Use it with: CODEX_HOME=<this directory> {KEY_VARIABLE}=<a skyrelay key> codex",
             'model_provider = "skyrelay"']
    if model:
        lines.append(f"model = {_toml_string(model)}")
    if not web_search:
        lines.append('web_search = "disabled"')
    lines += ["", "[model_providers.skyrelay]", 'name = "skyrelay"', f"base_url = {_toml_string(url)}",
              f'env_key = "{KEY_VARIABLE}"', 'wire_api = "responses"']
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable text is a TOML basic string


def codex_home_command(args: argparse.Namespace) -> int:
    problem = _url_problem(args.url)
    if problem:
        return _fail(f"--url {args.url!r}: {problem}")
    home = Path(args.dir).expanduser().absolute()
    config = home / "config.toml"
    if config.exists() and not args.force:
        # Codex records its folder trust decisions in this file: replacing it silently would forget them.
        return _fail(f"{config} exists; add --force to replace it (Codex's saved settings in it are lost)")
    try:
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(codex_config(args.url, args.model, web_search=not args.no_web_search))
    except OSError as exc:
        return _fail(f"cannot write {config}: {exc.strerror}")
    print(f"wrote {config}: Codex CLI through skyrelay at {args.url}\n"
          f"point Codex at it with two environment variables:\n"
          f"  export CODEX_HOME={home}\n"
          f"  export {KEY_VARIABLE}=<a skyrelay key>")
    return 0


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http(s)://host[:port]/v1"
    if not url.isprintable():
        return "contains control characters"
    return None


def _fail(message: str) -> int:
    sys.stderr.write(f"skyrelay: {message}\n")
    return 1
