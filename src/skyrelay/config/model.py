"""The typed configuration: what the rest of the gateway reads once loading and validation succeeded.

Everything here is immutable and cheap to read on the hot path (slots dataclasses, plain dicts and tuples).
Credentials are `Secret`s so that no repr, log line or error message can carry them by accident.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from ..db import DEFAULT_URL
from ..routing.health import BreakerPolicy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
# Anthropic's Messages API takes 32 MB: a coding agent's screenshots and PDFs (base64) fit under it, not under 4 MiB.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CLIENT_CONNECTIONS = 10_000
DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_STRATEGY = "weighted"
UNSUPPORTED_POLICIES = ("fail_over", "reject")  # what a request feature one deployment cannot honour does
DEFAULT_ON_UNSUPPORTED = "fail_over"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_CONNECTIONS = 100
# Who is paid for a deployment of each kind, unless its `vendor` says otherwise (the concentration cap counts these).
VENDOR_OF_KIND = {"azure": "azure", "bedrock": "aws", "gemini": "google", "vertex": "google",
                  "vertex_anthropic": "google", "anthropic": "anthropic", "openai": "openai"}
CONCENTRATION_MEASURES = ("requests", "cost")
BREACH_POLICIES = ("serve", "refuse")


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
    """US dollars per million tokens (the list price). `cached_input_per_mtok` None means cached input costs the full
    price, `cache_write_per_mtok` None the same for tokens written to a prompt cache. `discount` is the contracted
    rate off list (0.1: billed at 90%)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    discount: float = 0.0


@dataclass(frozen=True, slots=True)
class LatencyObjective:
    """What `cheapest_within` keeps: a deployment's recent TTFT at `percentile` at most `ttft_ms`."""

    ttft_ms: float
    percentile: float = 95.0


@dataclass(frozen=True, slots=True)
class Hedge:
    """A second attempt, at another vendor's deployment, for a request without output after `after_ms` or after
    the first deployment's recent `after_percentile` of time to first token (exactly one of the two is set)."""

    after_ms: float | None = None
    after_percentile: float | None = None


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
    vendor: str = ""  # who is paid (default from kind); the concentration cap counts shares per vendor
    geo: str | None = None  # a short label (eu, us) residency policies match, as they match region
    context_window: int | None = None  # the most prompt tokens it takes; None: not checked
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

    def __post_init__(self) -> None:
        if not self.vendor:  # who is paid follows from the kind unless said otherwise
            object.__setattr__(self, "vendor", VENDOR_OF_KIND.get(self.kind, self.kind))

    def __hash__(self) -> int:  # names are unique, and dict fields cannot be hashed
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class Concentration:
    """No vendor carries more than `max_share` of a group's requests (or estimated cost) over `window_s`, while
    another vendor can serve; when none other can, `on_breach` says whether to serve anyway or refuse (429)."""

    max_share: float
    window_s: float = 600.0
    measure: str = "requests"  # requests | cost
    on_breach: str = "serve"  # serve | refuse


@dataclass(frozen=True, slots=True)
class RoutingDefaults:
    """Gateway-wide defaults for every model group (a group's own setting wins)."""

    concentration: Concentration | None = None


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """The public model name clients ask for, and the deployments (then fallback groups) that serve it."""

    name: str
    strategy: str = DEFAULT_STRATEGY  # a name in routing.STRATEGIES: weighted, least_outstanding, fastest, ...
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # across deployments and fallbacks
    fallbacks: tuple[str, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    # "fail_over": an answer-changing feature the chosen deployment cannot honour sends the request to the group's
    # other deployments (and fallbacks), 400 only if none can; "reject": the strategy's pick is final, the 400 too.
    on_unsupported: str = DEFAULT_ON_UNSUPPORTED
    queue_timeout_ms: int = 0  # how long a request waits for quota headroom before its 429; 0: no wait
    residency: frozenset[str] | None = None  # geos or regions (lower case) its deployments must match; None: any
    concentration: Concentration | None = None  # the group's own, else the gateway-wide default; None: no cap
    context_fallbacks: tuple[str, ...] = ()  # groups for a prompt that fits none of its deployments' windows
    # The deployments grouped by ascending tier, for the planner; () when every one is in tier 0 (use deployments).
    tiers: tuple[tuple[Deployment, ...], ...] = ()
    latency_objective: LatencyObjective | None = None  # required by (and only read by) cheapest_within
    hedge: Hedge | None = None  # None: no hedging

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
    key_secret: Secret | None = None  # HMAC secret of admin-made keys; None: generated once, kept in the database
    drain_timeout_s: float = 30.0  # on SIGTERM: how long requests in flight may take to finish


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """`url`: sqlite:///path (the default, embedded) or postgresql://...; may hold a password, never printed."""

    url: str = DEFAULT_URL
    responses_retention_days: float = 30.0  # stored Responses (store: true) are deleted this long after creation

    def __repr__(self) -> str:
        return "DatabaseConfig(...)"


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """The write-ahead spool in front of the ledger's table (see docs/ledger.md, "Guarantees")."""

    enabled: bool = True
    spool_dir: str = "./.skyrelay/spool"  # relative to the working directory, like the default database
    fsync_interval_ms: int = 200  # a power loss loses at most this much of the latest records
    max_spool_bytes: int = 1 << 30  # above it /health/ready says so; records are still kept, never dropped
    segment_bytes: int = 8 << 20  # each spool file's (preallocated) size


@dataclass(frozen=True, slots=True)
class Commitment:
    """A contract with a vendor. `reserved`: capacity paid by the hour (`cost_per_hour`) whatever the traffic, for
    `deployments`. `spend`: `amount_usd` drawn down by billed usage of `deployments` (every deployment of the vendor
    when the file lists none), at `discount` off list. Runs from `start` (inclusive) to `end` (exclusive), UTC."""

    name: str
    kind: str  # reserved | spend
    vendor: str
    deployments: tuple[str, ...]
    start: datetime.date
    end: datetime.date
    cost_per_hour: float = 0.0
    amount_usd: float = 0.0
    discount: float = 0.0


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where limit and budget counters live: this process (`memory`) or a Redis many replicas share."""

    backend: str = "memory"  # memory | redis
    url: str | None = field(default=None, repr=False)  # redis only; may hold a password, never printed
    prefix: str = "skyrelay:"  # of every Redis key skyrelay writes


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: str  # day | week | month | total (calendar periods in UTC; weeks start on Monday)


@dataclass(frozen=True, slots=True)
class Team:
    """What a team's keys share: the model groups they may use, where data may go, limits and a budget."""

    name: str
    models: frozenset[str] | None = None  # None: every model group
    residency: frozenset[str] | None = None  # None: anywhere
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: Budget | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One client key, known only by its sha256 `digest`; its own limits apply on top of its team's."""

    name: str
    digest: str
    team: str | None = None
    models: frozenset[str] | None = None
    residency: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: Budget | None = None
    expires_at: float | None = None  # epoch seconds
    metadata: dict[str, Any] = field(default_factory=dict)
    role: str = "user"  # user | admin

    def __hash__(self) -> int:
        return hash(self.digest)


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
    routing: RoutingDefaults = RoutingDefaults()
    state: StateConfig = StateConfig()
    teams: dict[str, Team] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)  # by digest
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    otlp: OtlpConfig | None = None  # telemetry.otlp; None: no tracing, and no tracing code on the request path
    database: DatabaseConfig = DatabaseConfig()
    ledger: LedgerConfig = LedgerConfig()
    commitments: tuple[Commitment, ...] = ()

    def deployments(self) -> list[Deployment]:
        """Every deployment of every group, in file order."""
        return [d for group in self.model_groups.values() for d in group.deployments]

    def deployment(self, name: str) -> Deployment | None:
        for group in self.model_groups.values():
            for candidate in group.deployments:
                if candidate.name == name:
                    return candidate
        return None
