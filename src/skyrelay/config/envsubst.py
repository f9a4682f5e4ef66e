"""`${VAR}` substitution in configuration strings; `$${` writes a literal `${`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(slots=True)
class Substitution:
    text: str
    missing: list[str]  # referenced variables that are not set
    malformed: list[str]  # `${...}` that is not a variable reference (shown to the user as written)


def substitute(text: str, env: Mapping[str, str]) -> Substitution:
    """Replace every `${NAME}` in `text` by `env[NAME]`; report unset and malformed references."""
    missing: list[str] = []
    malformed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group("body")
        if match.group("close") is None or not _NAME.match(body):
            malformed.append(match.group(0))
            return match.group(0)
        value = env.get(body)
        if value is None:
            missing.append(body)
            return match.group(0)
        return value

    return Substitution(_REFERENCE.sub(replace, text), missing, malformed)


def has_reference(text: str) -> bool:
    return "${" in text
