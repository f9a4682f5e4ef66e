"""What an emulated cloud is: `CloudSpec`, built in Python or loaded from the emulator's YAML file.

    clouds:
      - name: azure-eastus
        protocol: openai          # openai | azure | bedrock | anthropic | gemini | vertex | vertex_anthropic
        port: 9101
        api_key: test-key         # omit to accept any key
        models: [gpt-4o-mini]     # omit to accept any model
        ttft_ms: 20
        tokens_per_second: 500
        faults: [{status: 429, every: 5, retry_after: 2}]
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .capacity_config import CAPACITY_KEYS, CapacityConfigError, CapacityPlan, parse_capacity
from .embeddings import DEFAULT_DIMENSIONS
from .faults import Fault, FaultConfigError, parse_faults


class EmulatorConfigError(ValueError):
    """The emulator's configuration is wrong; the message names the YAML path."""


@dataclass(slots=True)
class CloudSpec:
    name: str = "emulated"
    protocol: str = "openai"
    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port (tests)
    api_key: str | None = field(default=None, repr=False)  # None: any key (or none) is accepted
    models: list[str] = field(default_factory=list)  # empty: any model name is accepted
    deployments: list[Any] = field(default_factory=list)  # azure: "name" or {name, model}; empty: any
    api_versions: list[str] | None = None  # azure: accepted api-version values; None: the known ones
    ttft_ms: float = 20.0
    tokens_per_second: float = 500.0
    jitter: float = 0.0
    output_tokens: int | tuple[int, int] = 24  # a number, or [low, high] drawn per reply
    seed: int = 0
    faults: list[Any] = field(default_factory=list)  # dicts as in YAML, or Fault objects
    embedding_dimensions: int = DEFAULT_DIMENSIONS
    max_body_bytes: int = 16 * 1024 * 1024
    options: dict[str, Any] = field(default_factory=dict)  # protocol-specific settings
    # capacity (capacity_config.py): None is no limit
    quota: dict[str, Any] | None = None  # {rpm, tpm, itpm, otpm, window_s, rpm_window_s}
    concurrency: int | None = None  # serving slots
    queue: int | None = None  # requests that may wait for a slot
    provisioned: dict[str, Any] | None = None  # {tpm, window_s}: Azure-PTU-style utilisation
    load_slowdown: dict[str, Any] | None = None  # {ttft, tokens}
    prompt_cache: dict[str, Any] | None = None  # {ttl_s, min_tokens, block_tokens}
    per_model: dict[str, Any] | None = None  # model (azure: deployment) -> overrides of the keys above

    def parsed_faults(self) -> list[Fault]:
        return parse_faults(self.faults, f"{self.name}.faults")

    def capacity_plan(self, where: str | None = None) -> CapacityPlan:
        raw = {key: getattr(self, key) for key in (*CAPACITY_KEYS, "per_model")}
        return parse_capacity(raw, where or self.name)


_FIELDS = {f.name for f in fields(CloudSpec)}
_NUMBERS = ("ttft_ms", "tokens_per_second", "jitter")
_INTEGERS = ("port", "seed", "embedding_dimensions", "max_body_bytes")
_STRINGS = ("name", "protocol", "host", "api_key")


def load_emulator_config(path: str | Path) -> list[CloudSpec]:
    """Read and check an emulator YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EmulatorConfigError(f"{path}: cannot read the emulator configuration: {exc}") from None
    return specs_from_dict(data, str(path))


def specs_from_dict(data: Any, source: str = "config") -> list[CloudSpec]:
    if not isinstance(data, dict) or not isinstance(data.get("clouds"), list):
        raise EmulatorConfigError(f"{source}: expected a top-level `clouds:` list")
    specs = [_spec(raw, f"clouds[{i}]") for i, raw in enumerate(data["clouds"])]
    _check_unique(specs)
    return specs


def _spec(raw: Any, where: str) -> CloudSpec:
    if not isinstance(raw, dict):
        raise EmulatorConfigError(f"{where}: expected a mapping with at least `name` and `protocol`")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise EmulatorConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    if "name" not in raw:
        raise EmulatorConfigError(f"{where}.name: required")
    for key in _STRINGS:
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise EmulatorConfigError(f"{where}.{key}: expected a string")
    for key in _INTEGERS:
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 0):
            raise EmulatorConfigError(f"{where}.{key}: expected a whole number >= 0")
    for key in _NUMBERS:
        if key in raw and (not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool) or raw[key] < 0):
            raise EmulatorConfigError(f"{where}.{key}: expected a number >= 0")
    for key in ("models", "api_versions"):
        if raw.get(key) is not None and not (
                isinstance(raw[key], list) and all(isinstance(m, str) for m in raw[key])):
            raise EmulatorConfigError(f"{where}.{key}: expected a list of strings")
    _check_deployments(raw.get("deployments"), f"{where}.deployments")
    kwargs = dict(raw)
    kwargs["output_tokens"] = _output_tokens(raw.get("output_tokens", 24), f"{where}.output_tokens")
    if raw.get("options") is not None and not isinstance(raw["options"], dict):
        raise EmulatorConfigError(f"{where}.options: expected a mapping")
    for key in ("models", "deployments", "faults", "options"):
        if kwargs.get(key) is None:
            kwargs.pop(key, None)
    spec = CloudSpec(**kwargs)
    try:
        parse_faults(spec.faults, f"{where}.faults")
    except FaultConfigError as exc:
        raise EmulatorConfigError(str(exc)) from None
    try:
        spec.capacity_plan(where)
    except CapacityConfigError as exc:
        raise EmulatorConfigError(str(exc)) from None
    from .protocols import PROTOCOLS  # late: protocols import this module

    if spec.protocol not in PROTOCOLS:
        raise EmulatorConfigError(f"{where}.protocol: {spec.protocol!r} is not one of {sorted(PROTOCOLS)}")
    return spec


def _output_tokens(value: Any, where: str) -> int | tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 1 for v in value)
            and value[0] <= value[1]):
        return (value[0], value[1])
    raise EmulatorConfigError(f"{where}: expected a number >= 1 or [low, high]")


def _check_deployments(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise EmulatorConfigError(f"{where}: expected a list of names or {{name, model}} mappings")
    for i, item in enumerate(value):
        ok = isinstance(item, str) or (isinstance(item, dict) and isinstance(item.get("name"), str)
                                       and isinstance(item.get("model", ""), str) and set(item) <= {"name", "model"})
        if not ok:
            raise EmulatorConfigError(f"{where}[{i}]: expected a name or {{name: ..., model: ...}}")


def _check_unique(specs: list[CloudSpec]) -> None:
    seen_names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen_names:
            raise EmulatorConfigError(f"clouds[{i}].name: {spec.name!r} is used twice")
        seen_names.add(spec.name)
        if spec.port and (spec.host, spec.port) in seen_ports:
            raise EmulatorConfigError(f"clouds[{i}].port: {spec.port} is used twice")
        seen_ports.add((spec.host, spec.port))
