"""The typed configuration: what the rest of the gateway reads once loading and validation succeeded.

Everything here is immutable and cheap to read on the hot path (slots dataclasses, plain dicts and tuples).
Credentials are `Secret`s so that no repr, log line or error message can carry them by accident.
"""

from __future__ import annotations

import hmac
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from ..routing.health import BreakerPolicy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_CLIENT_CONNECTIONS = 10_000
DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_STRATEGY = "weighted"
UNSUPPORTED_POLICIES = ("fail_over", "reject")  # what a request feature one deployment cannot honour does
DEFAULT_ON_UNSUPPORTED = "fail_over"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_CONNECTIONS = 100


class Secret:
    """A credential. Prints as `Secret('***')`; only `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison with a presented credential (e.g. a client's API key)."""
        return hmac.compare_digest(self._value.encode(), candidate.encode())

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling keeps the value (multiprocess workers), printing never does
        return (Secret, (self._value,))


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in the configuration, located by its YAML path (empty for whole-file problems)."""

    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(Exception):
    """The configuration is invalid; `.problems` lists every mistake found, not just the first."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(self._render())

    def __reduce__(self):  # the default would rebuild it from the rendered text
        return (ConfigError, (self.problems, self.source))

    def _render(self) -> str:
        count = len(self.problems)
        where = self.source or "the configuration"
        head = f"{count} problem{'s' if count != 1 else ''} in {where}:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, to receive the first byte of the answer, and for the whole exchange."""

    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens. `cached_input_per_mtok` None means cached input costs the full price."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Probe the deployment every `interval_s` while its breaker is open or half-open (never while healthy)."""

    interval_s: float = 10.0
    timeout_s: float = 5.0  # a check that takes longer failed


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream model on one cloud endpoint; the unit routing chooses among."""

    name: str  # unique across the whole configuration
    group: str  # the model group it serves
    kind: str  # openai | azure | bedrock | anthropic | gemini | vertex
    _: KW_ONLY
    model: str  # upstream model id (for azure: the deployment name)
    base_url: str | None = None  # None: the provider derives its cloud's endpoint (bedrock, gemini, vertex)
    api_key: Secret | None = None
    region: str | None = None
    weight: float = 1.0
    timeouts: Timeouts = Timeouts()
    rpm: int | None = None  # requests per sliding minute routing sends it at most
    tpm: int | None = None  # tokens (estimated, then as reported) per sliding minute
    max_concurrency: int | None = None  # requests in flight at once
    tier: int = 0  # commitment tier: lower tiers fill first, the next takes the spill
    price: Price = Price()
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # values may hold tokens: never printed
    tags: dict[str, Any] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    health_check: HealthCheck | None = None  # None: no active checks, a customer request is the half-open probe
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific keys; credentials are Secrets

    def __hash__(self) -> int:  # names are unique, and dict fields cannot be hashed
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """The public model name clients ask for, and the deployments (then fallback groups) that serve it."""

    name: str
    strategy: str = DEFAULT_STRATEGY  # weighted | least_outstanding
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # across deployments and fallbacks
    fallbacks: tuple[str, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    # "fail_over": an answer-changing feature the chosen deployment cannot honour sends the request to the group's
    # other deployments (and fallbacks), 400 only if none can; "reject": the strategy's pick is final, the 400 too.
    on_unsupported: str = DEFAULT_ON_UNSUPPORTED
    queue_timeout_ms: int = 0  # how long a request waits for quota headroom before its 429; 0: no wait
    # The deployments grouped by ascending tier, for the planner; () when every one is in tier 0 (use deployments).
    tiers: tuple[tuple[Deployment, ...], ...] = ()

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    master_key: Secret | None = None  # None: development mode, any (or no) key is accepted
    max_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS  # client connections open at once; more get 503
    head_timeout: float = DEFAULT_HEAD_TIMEOUT  # seconds for a request line and headers to arrive
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds a request body may pause between two pieces


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True  # counted per request (a few dict increments), rendered only when scraped
    public: bool = False  # False: GET /metrics wants the master key like every other route


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    access: bool = False  # one JSON line per request; off by default, as its volume is the traffic's
    file: str | None = None  # None: stderr; else the access log is appended to this file
    level: str = "info"  # of the gateway's own log (events, warnings)
    format: str = "text"  # of the gateway's own log: text for people, json for log pipelines


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    """Where the traces go (OTLP over HTTP, protobuf), and which share of requests is traced."""

    endpoint: str  # the collector's traces URL, e.g. http://127.0.0.1:4318/v1/traces
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry a backend's token
    sample_ratio: float = 1.0  # of requests without a traceparent; a client's sampled flag is followed


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    model_groups: dict[str, ModelGroup] = field(default_factory=dict)  # in file order
    health: BreakerPolicy = BreakerPolicy()  # breaker and ejection rules, for every deployment
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    otlp: OtlpConfig | None = None  # telemetry.otlp; None: no tracing, and no tracing code on the request path

    def deployments(self) -> list[Deployment]:
        """Every deployment of every group, in file order."""
        return [d for group in self.model_groups.values() for d in group.deployments]

    def deployment(self, name: str) -> Deployment | None:
        for group in self.model_groups.values():
            for candidate in group.deployments:
                if candidate.name == name:
                    return candidate
        return None
