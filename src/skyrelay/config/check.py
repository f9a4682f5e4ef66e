"""`skyrelay check-config FILE`: print every problem with its path and hint, or a summary of a valid file."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from . import load_config
from .model import Config, ConfigError


def summarize(config: Config) -> list[str]:
    """A short, secret-free description of a valid configuration."""
    server = config.server
    key = "master key set" if server.master_key else "no master key (development mode: any key is accepted)"
    lines = [f"server: {server.host}:{server.port}, {key}"]
    for group in config.model_groups.values():
        extra = f", fallbacks: {', '.join(group.fallbacks)}" if group.fallbacks else ""
        lines.append(f"model group {group.name!r} ({group.strategy}, max_attempts {group.max_attempts}{extra}):")
        for d in group.deployments:
            where = d.base_url or f"{d.kind} default endpoint"
            lines.append(f"  - {d.name}: {d.kind} {d.model} at {where} (weight {d.weight:g})")
    return lines


def run(path: str, *, env: Mapping[str, str] = os.environ, out: TextIO = sys.stdout) -> int:
    """Check one file; print the result; return the process exit status (0 valid, 1 invalid)."""
    try:
        config = load_config(path, env=env)
    except ConfigError as error:
        print(error, file=out)
        return 1
    groups, deployments = len(config.model_groups), len(config.deployments())
    print(f"{path}: OK, {groups} model group{'s' * (groups != 1)}, "
          f"{deployments} deployment{'s' * (deployments != 1)}", file=out)
    for line in summarize(config):
        print(f"  {line}", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: skyrelay check-config FILE", file=sys.stderr)
        return 2
    return run(args[0])
