"""Typed gateway configuration, loaded from one YAML file and validated with messages that name the YAML path.

    config = load_config("gateway.yaml")          # raises ConfigError listing every problem
    problems = check_config("gateway.yaml")       # the same checks, returned instead of raised

See docs/configuration.md for every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import (Config, ConfigError, Deployment, ModelGroup, Price, Problem, Secret, ServerConfig,
                    Timeouts)
from .kinds import KINDS
from .parse import STRATEGIES, build
from .source import parse_yaml, read_file

__all__ = [
    "Config", "ConfigError", "Deployment", "KINDS", "ModelGroup", "Price", "Problem", "STRATEGIES", "Secret",
    "ServerConfig", "Timeouts", "check_config", "load_config", "parse_config",
]

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def load_config(path: str | os.PathLike, *, env: Mapping[str, str] = os.environ) -> Config:
    """Read, substitute `${VAR}`s and validate one configuration file; raise ConfigError with every problem."""
    text, problems = read_file(path)
    if text is not None:
        config, problems = _from_text(text, env)
        if config is not None:
            return config
    raise ConfigError(problems, source=os.fspath(path))


def parse_config(data: Any, *, env: Mapping[str, str] = os.environ) -> Config:
    """Validate an already-loaded mapping (the YAML document as Python data)."""
    config, problems = _build_safely(data, env)
    if config is None:
        raise ConfigError(problems)
    return config


def check_config(path_or_text: str | os.PathLike, *, env: Mapping[str, str] = os.environ) -> list[Problem]:
    """Every problem of a configuration given as a file path or as YAML text; [] when it is valid.

    A str is read as a path when it names an existing file or ends in .yaml/.yml/.json and holds no line break.
    """
    if _looks_like_path(path_or_text):
        text, problems = read_file(path_or_text)
        if text is None:
            return problems
    else:
        text = path_or_text
    return _from_text(text, env)[1]


def _looks_like_path(value: str | os.PathLike) -> bool:
    if not isinstance(value, str):
        return True
    if "\n" in value:
        return False
    return value.endswith(_CONFIG_SUFFIXES) or Path(value).is_file()


def _from_text(text: str, env: Mapping[str, str]) -> tuple[Config | None, list[Problem]]:
    data, yaml_problems = parse_yaml(text)
    if data is None and yaml_problems:
        return None, yaml_problems
    config, problems = _build_safely(data, env)
    if yaml_problems:
        return None, yaml_problems + problems
    return config, problems


def _build_safely(data: Any, env: Mapping[str, str]) -> tuple[Config | None, list[Problem]]:
    """The validator must report, never crash: an unexpected exception becomes one problem (and is a bug)."""
    try:
        return build(data, env)
    except Exception as error:  # noqa: BLE001 - load_config promises ConfigError only
        return None, [Problem("", f"internal error while checking the configuration ({type(error).__name__})",
                              "please report this as a skyrelay bug")]
