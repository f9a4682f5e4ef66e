"""OpenTelemetry traces after the GenAI semantic conventions: a server span per request, a client span per attempt.

Spans are built when the request's context closes, from the times it recorded, so the attempt loop carries no
tracing code. What has to happen during the request is small: on arrival the W3C `traceparent` is read (or a
trace started, sampled at `sample_ratio`), and each upstream call carries a `traceparent` naming its attempt's
span (providers/base.py asks `upstream_traceparent`). A request that is not sampled pays one ContextVar set; with
tracing off (no `telemetry.otlp`) this module is not even imported.
"""

from __future__ import annotations

import random
import re
import time
from contextvars import ContextVar
from typing import Any

CURRENT: ContextVar["RequestTrace | None"] = ContextVar("skyrelay_trace", default=None)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
# gen_ai.system / gen_ai.provider.name for each deployment kind, as the conventions spell them.
PROVIDER_NAMES = {"openai": "openai", "azure": "azure.ai.openai", "bedrock": "aws.bedrock",
                  "anthropic": "anthropic", "gemini": "gcp.gemini", "vertex": "gcp.vertex_ai",
                  "vertex_anthropic": "gcp.vertex_ai"}


class RequestTrace:
    """One sampled request's ids: its trace, the caller's span (if it sent one), and one span id per upstream call."""

    __slots__ = ("request_id", "trace_id", "parent_id", "calls")

    def __init__(self, request_id: str, trace_id: int, parent_id: int | None):
        self.request_id = request_id
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.calls: list[tuple[str, int]] = []  # (deployment, span id) in the order the calls went out

    def child(self, deployment: str) -> str:
        span_id = random.getrandbits(64) or 1
        self.calls.append((deployment, span_id))
        return f"00-{self.trace_id:032x}-{span_id:016x}-01"


def upstream_traceparent(deployment: str) -> str | None:
    """The traceparent for a call to `deployment` now, when this request is traced."""
    trace = CURRENT.get()
    return trace.child(deployment) if trace is not None else None


def parse_traceparent(value: str | None) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a valid version-00 header; None for anything else (ignored)."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    trace_id, parent_id = int(match.group(1), 16), int(match.group(2), 16)
    if not trace_id or not parent_id:
        return None
    return trace_id, parent_id, bool(int(match.group(3), 16) & 1)


class _ChosenIds:
    """The SDK's id generator, told in advance which ids the next span gets (ids the upstream already saw)."""

    def __init__(self):
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id or random.getrandbits(128)

    def generate_span_id(self) -> int:
        span_id, self.span_id = self.span_id, 0
        return span_id or random.getrandbits(64) or 1


class Tracer:
    def __init__(self, otlp: Any, deployments: list[Any]):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from opentelemetry import trace

        self._trace = trace
        self.ratio = otlp.sample_ratio
        self._ids = _ChosenIds()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "skyrelay"}), sampler=ALWAYS_ON,
                                       id_generator=self._ids)  # sampling is decided on arrival (begin)
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=otlp.endpoint, headers=dict(otlp.headers), timeout=10)))
        self.tracer = self.provider.get_tracer("skyrelay")
        self.models = {d.name: d.model for d in deployments}

    def begin(self, request: Any) -> None:
        """On arrival: follow the caller's trace and sampling decision, or start one at `sample_ratio`."""
        parent = parse_traceparent(request.headers.get("traceparent"))
        if parent is not None:
            trace_id, parent_id, sampled = parent
        else:
            trace_id, parent_id, sampled = random.getrandbits(128) or 1, None, random.random() < self.ratio
        CURRENT.set(RequestTrace(request.id, trace_id, parent_id) if sampled else None)

    def record(self, ctx: Any, status: int, end: float) -> None:
        """At the context's close: the server span and its attempts' client spans, with the times ctx recorded."""
        trace = CURRENT.get()
        if trace is None or trace.request_id != ctx.request_id:
            return
        api = self._trace
        now_ns = time.time_ns()

        def wall(t: float) -> int:  # the dispatcher's monotonic clock, on the wall clock spans carry
            return now_ns - int((end - t) * 1e9)

        parent = None
        if trace.parent_id is not None:
            parent = api.set_span_in_context(api.NonRecordingSpan(api.SpanContext(
                trace.trace_id, trace.parent_id, is_remote=True, trace_flags=api.TraceFlags(1))))
        operation = "embeddings" if ctx.path.endswith("/embeddings") else "chat"
        ids = self._ids
        ids.trace_id = trace.trace_id
        server = self.tracer.start_span(f"{operation} {ctx.group}", context=parent, kind=api.SpanKind.SERVER,
                                        start_time=wall(ctx.arrival))
        ids.trace_id = 0
        usage = ctx.usage
        attrs = {"gen_ai.operation.name": operation, "gen_ai.request.model": ctx.group,
                 "http.request.method": "POST", "url.path": ctx.path, "http.response.status_code": status,
                 "skyrelay.request_id": ctx.request_id, "skyrelay.attempts": len(ctx.attempts)}
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        if ctx.error is not None:
            attrs["error.type"] = type(ctx.error).__name__
        calls = list(trace.calls)
        in_server = api.set_span_in_context(server)
        for attempt in ctx.attempts:
            self._attempt_span(api, attempt, operation, in_server, calls, wall, end)
            if attempt.status == "ok":
                attrs["skyrelay.deployment"] = attempt.deployment
                attrs["gen_ai.response.model"] = self.models.get(attempt.deployment, "")
        server.set_attributes(attrs)
        if status >= 500:
            server.set_status(api.Status(api.StatusCode.ERROR))
        server.end(end_time=wall(end))

    def _attempt_span(self, api, attempt: Any, operation: str, parent, calls: list, wall, end: float) -> None:
        # The span id the upstream saw in its traceparent: the first unclaimed call to this deployment.
        for index, (deployment, span_id) in enumerate(calls):
            if deployment == attempt.deployment:
                self._ids.span_id = span_id
                del calls[index]
                break
        model = self.models.get(attempt.deployment, "")
        span = self.tracer.start_span(f"{operation} {model}", context=parent, kind=api.SpanKind.CLIENT,
                                      start_time=wall(attempt.start))
        self._ids.span_id = 0
        provider = PROVIDER_NAMES.get(attempt.vendor, attempt.vendor)
        attrs = {"gen_ai.operation.name": operation, "gen_ai.system": provider, "gen_ai.provider.name": provider,
                 "gen_ai.request.model": model, "skyrelay.deployment": attempt.deployment,
                 "skyrelay.attempt.result": attempt.status or "abandoned"}
        if attempt.region:
            attrs["cloud.region"] = attempt.region
        usage = attempt.usage
        if usage is not None:
            attrs["gen_ai.response.model"] = model
            attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        if attempt.error_kind is not None:
            attrs["error.type"] = attempt.error_kind
            if attempt.status == "failed":
                span.set_status(api.Status(api.StatusCode.ERROR))
        span.set_attributes(attrs)
        span.end(end_time=wall(attempt.end if attempt.end is not None else end))

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is queued (a bounded export with the exporter's timeout)
