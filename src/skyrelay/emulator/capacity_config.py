"""What capacity an emulated cloud has: quota, serving slots, provisioned throughput, prompt caching.

    quota: {rpm: 600, tpm: 90000, window_s: 60}   # window_s: the quota's period (tests shorten it)
    concurrency: 4                                # serving slots; more requests wait in a FIFO queue
    queue: 8                                      # ... of this length; beyond it the cloud refuses (overloaded)
    provisioned: {tpm: 30000}                     # Azure-PTU-style leaky bucket (utilisation above 100%: 429)
    load_slowdown: {ttft: 2.0, tokens: 1.0}       # with every slot busy: TTFT x3, time per token x2
    prompt_cache: {ttl_s: 300, min_tokens: 1024}  # a prefix seen within ttl_s is reported as cached
    per_model: {gpt-4o: {quota: {rpm: 60}}}       # overrides by model (azure: by deployment name)

The same mapping is accepted at runtime over PUT /_emulator/capacity. Errors name the path of the bad key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CAPACITY_KEYS = ("quota", "concurrency", "queue", "provisioned", "load_slowdown", "prompt_cache")
_QUOTA_KEYS = {"rpm", "tpm", "itpm", "otpm", "window_s", "rpm_window_s"}


class CapacityConfigError(ValueError):
    """A capacity description is wrong; the message names where."""


@dataclass(frozen=True, slots=True)
class Quota:
    rpm: int | None = None
    tpm: int | None = None  # prompt + max output tokens, charged at arrival
    itpm: int | None = None  # input tokens (uncached), as Anthropic counts them
    otpm: int | None = None  # output tokens (max_tokens, charged at arrival)
    window_s: float = 60.0
    rpm_window_s: float | None = None  # requests are enforced over this shorter period (None: the cloud's default)


@dataclass(frozen=True, slots=True)
class Provisioned:
    tpm: int
    window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Slowdown:
    ttft: float = 0.0  # extra TTFT, as a multiple of the unloaded TTFT, with every slot busy
    tokens: float = 0.0  # the same for the time per output token


@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl_s: float = 300.0
    min_tokens: int = 1024
    block_tokens: int = 128  # cached lengths come in these increments


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    quota: Quota | None = None
    concurrency: int | None = None
    queue: int = 0
    provisioned: Provisioned | None = None
    load_slowdown: Slowdown | None = None
    prompt_cache: CacheSettings | None = None

    @property
    def unlimited(self) -> bool:
        return (self.quota is None and self.concurrency is None and self.provisioned is None
                and self.prompt_cache is None)


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    defaults: CapacitySettings
    per_model: dict[str, CapacitySettings]
    source: dict[str, Any]  # the validated mapping, as given (what the admin API shows)

    def settings_for(self, key: str) -> CapacitySettings:
        return self.per_model.get(key, self.defaults)

    @property
    def unlimited(self) -> bool:
        return self.defaults.unlimited and all(s.unlimited for s in self.per_model.values())


NO_CAPACITY = CapacityPlan(CapacitySettings(), {}, {})


def parse_capacity(raw: Any, where: str = "capacity") -> CapacityPlan:
    """A plan from the capacity keys of a cloud's mapping (other keys are ignored), or from an admin API body."""
    if raw is None:
        return NO_CAPACITY
    if not isinstance(raw, dict):
        raise CapacityConfigError(f"{where}: expected a mapping of {', '.join(CAPACITY_KEYS)}, per_model")
    own = {k: v for k, v in raw.items() if k in CAPACITY_KEYS and v is not None}
    defaults = _settings(own, where)
    per_model: dict[str, CapacitySettings] = {}
    overrides = raw.get("per_model")
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise CapacityConfigError(f"{where}.per_model: expected a mapping of model (or deployment) names")
        for name, item in overrides.items():
            path = f"{where}.per_model.{name}"
            if not isinstance(item, dict):
                raise CapacityConfigError(f"{path}: expected a mapping of {', '.join(CAPACITY_KEYS)}")
            unknown = set(item) - set(CAPACITY_KEYS)
            if unknown:
                raise CapacityConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {list(CAPACITY_KEYS)}")
            per_model[str(name)] = _settings({**own, **item}, path)  # null: no such limit for this model
    source = dict(own)
    if overrides:
        source["per_model"] = overrides
    return CapacityPlan(defaults, per_model, source)


def check_capacity_body(raw: Any) -> None:
    """An admin API body may hold only capacity keys."""
    if isinstance(raw, dict):
        unknown = set(raw) - set(CAPACITY_KEYS) - {"per_model"}
        if unknown:
            raise CapacityConfigError(f"capacity: unknown key(s) {sorted(unknown)}; known: "
                                      f"{[*CAPACITY_KEYS, 'per_model']}")


def _settings(raw: dict[str, Any], where: str) -> CapacitySettings:
    concurrency = _number(raw, "concurrency", where, whole=True, low=1)
    queue = _number(raw, "queue", where, whole=True, low=0)
    if queue and concurrency is None:
        raise CapacityConfigError(f"{where}.queue: needs `concurrency` (the slots the queue waits for)")
    slowdown = _slowdown(raw.get("load_slowdown"), f"{where}.load_slowdown")
    if slowdown is not None and concurrency is None:
        raise CapacityConfigError(f"{where}.load_slowdown: needs `concurrency` (load is the share of busy slots)")
    return CapacitySettings(_quota(raw.get("quota"), f"{where}.quota"), concurrency, queue or 0,
                            _provisioned(raw.get("provisioned"), f"{where}.provisioned"), slowdown,
                            _cache(raw.get("prompt_cache"), f"{where}.prompt_cache"))


def _quota(raw: Any, where: str) -> Quota | None:
    if raw is None:
        return None
    _mapping(raw, where, _QUOTA_KEYS)
    limits = {k: _number(raw, k, where, whole=True, low=1) for k in ("rpm", "tpm", "itpm", "otpm")}
    if all(v is None for v in limits.values()):
        raise CapacityConfigError(f"{where}: give at least one of rpm, tpm, itpm, otpm")
    window = _number(raw, "window_s", where, low=0.001)
    rpm_window = _number(raw, "rpm_window_s", where, low=0.001)
    window = 60.0 if window is None else float(window)
    if rpm_window is not None and rpm_window > window:
        raise CapacityConfigError(f"{where}.rpm_window_s: must not exceed window_s ({window:g})")
    return Quota(**limits, window_s=window, rpm_window_s=None if rpm_window is None else float(rpm_window))


def _provisioned(raw: Any, where: str) -> Provisioned | None:
    if raw is None:
        return None
    _mapping(raw, where, {"tpm", "window_s"})
    tpm = _number(raw, "tpm", where, whole=True, low=1)
    if tpm is None:
        raise CapacityConfigError(f"{where}.tpm: required (the deployment's tokens per minute)")
    window = _number(raw, "window_s", where, low=0.001)
    return Provisioned(tpm, 60.0 if window is None else float(window))


def _slowdown(raw: Any, where: str) -> Slowdown | None:
    if raw is None:
        return None
    _mapping(raw, where, {"ttft", "tokens"})
    return Slowdown(float(_number(raw, "ttft", where, low=0) or 0.0), float(_number(raw, "tokens", where, low=0) or 0.0))


def _cache(raw: Any, where: str) -> CacheSettings | None:
    if raw is None:
        return None
    if raw is True or raw == {}:
        return CacheSettings()
    _mapping(raw, where, {"ttl_s", "min_tokens", "block_tokens"})
    ttl = _number(raw, "ttl_s", where, low=0.001)
    minimum = _number(raw, "min_tokens", where, whole=True, low=1)
    block = _number(raw, "block_tokens", where, whole=True, low=1)
    defaults = CacheSettings()
    return CacheSettings(defaults.ttl_s if ttl is None else float(ttl), minimum or defaults.min_tokens,
                         block or defaults.block_tokens)


def _mapping(raw: Any, where: str, known: set[str]) -> None:
    if not isinstance(raw, dict):
        raise CapacityConfigError(f"{where}: expected a mapping with {', '.join(sorted(known))}")
    unknown = set(raw) - known
    if unknown:
        raise CapacityConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")


def _number(raw: dict[str, Any], key: str, where: str, *, whole: bool = False, low: float = 0):
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if whole else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or value < low:
        kind = "a whole number" if whole else "a number"
        raise CapacityConfigError(f"{where}.{key}: expected {kind} >= {low:g}, got {value!r}")
    return value
