"""Reading the configuration file and parsing its YAML, turning every failure into Problems.

YAML error messages are rebuilt from the error's position and description only: PyYAML's own text quotes the
offending line, which may hold a credential.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .model import Problem

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_Loader):
    """A safe loader that also notes keys written twice in one mapping (PyYAML silently keeps the last)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node, deep=False):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            earlier = first_line.get((key_node.tag, key_node.value))
            if earlier is None:
                first_line[(key_node.tag, key_node.value)] = line
            else:
                self.duplicates.append(Problem("", f"line {line}: key {key_node.value!r} appears twice in the "
                                                   f"same mapping (first on line {earlier})",
                                               "remove one of them"))
        return super().construct_mapping(node, deep=deep)



def read_file(path: str | os.PathLike) -> tuple[str | None, list[Problem]]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, [Problem("", f"{os.fspath(path)}: no such file", "check the path")]
    except IsADirectoryError:
        return None, [Problem("", f"{os.fspath(path)}: is a directory, not a file")]
    except OSError as error:
        return None, [Problem("", f"{os.fspath(path)}: cannot be read ({error.strerror or type(error).__name__})")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        return None, [Problem("", f"byte {error.start}: the file is not UTF-8 text", "save it as UTF-8")]


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """The YAML document as plain Python data, or the problems that prevent reading it."""
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        return None, [Problem("", "the configuration is empty", "start with model_groups: (see examples/)")]
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        return None, [_syntax_problem(error, text)]
    except yaml.YAMLError as error:
        return None, [Problem("", f"not valid YAML ({type(error).__name__})")]
    except RecursionError:
        return None, [Problem("", "the YAML nests too deeply")]
    finally:
        loader.dispose()
    return data, loader.duplicates


def _indented_with_tab(text: str, line: int) -> bool:
    lines = text.splitlines()
    return 0 <= line < len(lines) and "\t" in lines[line][: len(lines[line]) - len(lines[line].lstrip())]


def _syntax_problem(error: yaml.MarkedYAMLError, text: str) -> Problem:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = error.problem or "not valid YAML"
    if error.context:
        what = f"{what} ({error.context})"
    hint = "check the indentation, and quote values that contain ': ' or start with special characters"
    if mark and _indented_with_tab(text, mark.line):
        hint = "YAML does not allow tabs for indentation: use spaces"
    return Problem("", f"YAML syntax error at {where}{what}", hint)
